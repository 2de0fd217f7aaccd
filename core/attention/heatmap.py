"""Colour heat maps for previewing attention maps.

A value x ∈ [0, 1] maps to the "jet" colour (r, g, b) = clamp(1.5 − |4x − c|, 0, 1) for c = 3, 2, 1
(blue → cyan → yellow → red).
"""

import torch


def heatmap(values: torch.Tensor) -> torch.Tensor:
    """``[N, H, W]`` values in [0, 1] → ``[N, H, W, 3]`` RGB image in [0, 1]."""
    centres = torch.tensor([3.0, 2.0, 1.0], device=values.device)
    return (1.5 - (4.0 * values.clamp(0, 1)[..., None] - centres).abs()).clamp(0.0, 1.0)
