"""Bounding boxes of masks, to confine local work (dilation, closing, hole filling, counting) to where a mask is.

For a bool mask M [..., H, W] and a margin m, the box is rows [y₀ − m, y₁ + m] × columns [x₀ − m, x₁ + m], clipped to
the image, where y₀…y₁ and x₀…x₁ are the extreme rows and columns holding a True pixel in any mask of the batch.
"""

import torch


def _span(occupied: torch.Tensor, margin: int) -> slice:
    where = occupied.nonzero().squeeze(1)
    return slice(max(int(where[0]) - margin, 0), min(int(where[-1]) + 1 + margin, occupied.numel()))


def bounding_box(mask: torch.Tensor, margin: int = 0) -> tuple[slice, slice] | None:
    """(rows, columns) slices of the box around every True pixel of ``mask``, or None when it has none."""
    rows = mask.any(-1).reshape(-1, mask.shape[-2]).any(0)
    if not rows.any():
        return None
    row_span = _span(rows, 0)
    columns = mask[..., row_span, :].any(-2).reshape(-1, mask.shape[-1]).any(0)
    return _span(rows, margin) if margin else row_span, _span(columns, margin)
