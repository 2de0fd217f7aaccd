"""S2Edit's automatic object mask M_obj from the subject noun's cross-attention (P2P LocalBlend convention).

The noun's cross-attention map Ā (summed over its tokens, averaged over heads, the 16×16-equivalent layers and the
probed noise levels, resized to the image) is normalised by its maximum and thresholded:

    M_obj = 1[ Ā / max Ā ≥ τ ],        τ = 0.3 (P2P LocalBlend's default).
"""

import torch


def attention_object_mask(noun_map: torch.Tensor, threshold: float) -> torch.Tensor:
    """``[B, H, W]`` maps (of one image or a batch of views) → one binary ``[1, H, W]`` float mask."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    mean = noun_map.float().mean(dim=0, keepdim=True)
    peak = mean.amax().clamp_min(torch.finfo(torch.float32).tiny)
    return (mean / peak >= threshold).float()
