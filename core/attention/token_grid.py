"""Masks on a transformer layer's token grid.

A UNet layer sees the latent at its own resolution ``h × w`` (``Tq = h·w`` query tokens, row-major). An image or
latent mask ``[B, H, W]`` of any size and aspect ratio is brought to that grid by area averaging (the mean of
the mask over each token's footprint), so a token is exactly 0 where its whole footprint is outside the mask.
"""

import torch
import torch.nn.functional as F


def mask_to_token_grid(mask: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``[B, H, W]`` mask → ``[B, h·w]`` token weights on the ``grid = (h, w)`` of a layer."""
    resized = F.interpolate(mask[:, None].float(), size=grid, mode="area")
    return resized.flatten(1)
