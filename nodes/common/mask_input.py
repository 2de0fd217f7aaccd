"""Checking MASK inputs from any pack: ``[H, W]``, ``[B, H, W]`` or ``[B, 1, H, W]``, bool/uint8/float."""

import torch

from ...core.masks.mask_stack import as_mask_batch


def spatial_mask_batch(mask: torch.Tensor, name: str = "mask") -> torch.Tensor:
    """A float ``[B, H, W]`` copy of ``mask`` in [0, 1]; a clear error for empty, all-zero or NaN masks."""
    mask = as_mask_batch(mask, name)
    if mask.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(mask.shape)})")
    if mask.dtype == torch.uint8:
        mask = mask.float() / 255.0
    mask = mask.float()
    if torch.isnan(mask).any():
        raise ValueError(f"{name} contains NaN values")
    mask = mask.clamp(0.0, 1.0)
    if not (mask > 0).any():
        raise ValueError(f"{name} is all zero: the masked words would receive no attention anywhere")
    return mask
