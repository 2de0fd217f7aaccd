"""Binary dilation, erosion and closing with flat rectangular structuring elements.

For a binary mask X and the flat rectangle B = [−r_y, r_y] × [−r_x, r_x] (a (2r_y+1) × (2r_x+1) kernel of ones),

    dilation  (X ⊕ B)(p) = max_{q ∈ B} X(p + q),    erosion  (X ⊖ B)(p) = min_{q ∈ B} X(p + q),
    closing   X • B = (X ⊕ B) ⊖ B.

Pixels outside the image are ignored (the "geodesic" border of ``kornia.morphology`` and OpenCV's default border
value for ``dilate``/``erode``/``MORPH_CLOSE``), so closing never grows a mask from the image border.

The rectangle is separable, so each operation is a running maximum along rows and then along columns. The running
maximum over a window of length L is a sparse table: ⌊log2 L⌋ shifted ORs give T(i) = max X[i, i + 2^k), and two
overlapping reads of T cover the window. That is a handful of passes over a bool tensor whatever the kernel size,
where ``kornia.morphology`` unfolds every pixel's neighbourhood (a 21 × 21 closing of a 1024² mask takes seconds
and gigabytes there); the tests check both give the same masks.
"""

import torch


def _shifted(mask: torch.Tensor, offset: int, dim: int) -> torch.Tensor:
    """``out[i] = mask[i + offset]`` along ``dim``, False where ``i + offset`` is outside."""
    size = mask.shape[dim]
    out = torch.zeros_like(mask)
    if abs(offset) < size:
        kept = size - abs(offset)
        source = mask.narrow(dim, max(offset, 0), kept)
        out.narrow(dim, max(-offset, 0), kept).copy_(source)
    return out


def _running_any(mask: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """``out[i] = any(mask[i − radius : i + radius + 1])`` along ``dim`` (outside counts as False)."""
    if radius == 0:
        return mask
    size, length = mask.shape[dim], 2 * radius + 1
    pad_shape = list(mask.shape)
    pad_shape[dim] = radius
    # T(j) = any(X[j, j + span)) on X padded with `radius` Falses in front: window i is T(i) ∪ T(i + L − span),
    # two overlapping reads since 2·span > L
    table, span = torch.cat([mask.new_zeros(pad_shape), mask], dim), 1
    while 2 * span <= length:
        table = table | _shifted(table, span, dim)
        span *= 2
    return table.narrow(dim, 0, size) | table.narrow(dim, length - span, size)


def _check(mask: torch.Tensor, radius_y: int, radius_x: int) -> None:
    if mask.dtype != torch.bool or mask.dim() < 2:
        raise ValueError(f"expected a bool mask [..., H, W], got {mask.dtype} of shape {tuple(mask.shape)}")
    if radius_y < 0 or radius_x < 0:
        raise ValueError(f"structuring element radii must be ≥ 0, got ({radius_y}, {radius_x})")


def dilate(mask: torch.Tensor, radius_y: int, radius_x: int | None = None) -> torch.Tensor:
    """Dilation of a bool ``[..., H, W]`` mask by the (2r_y+1) × (2r_x+1) rectangle (r_x defaults to r_y)."""
    radius_x = radius_y if radius_x is None else radius_x
    _check(mask, radius_y, radius_x)
    return _running_any(_running_any(mask, radius_x, -1), radius_y, -2)


def erode(mask: torch.Tensor, radius_y: int, radius_x: int | None = None) -> torch.Tensor:
    """Erosion of a bool ``[..., H, W]`` mask by the (2r_y+1) × (2r_x+1) rectangle (r_x defaults to r_y)."""
    return ~dilate(~mask, radius_y, radius_x)


def close(mask: torch.Tensor, radius_y: int, radius_x: int | None = None) -> torch.Tensor:
    """Closing (dilation, then erosion) of a bool ``[..., H, W]`` mask by the same rectangle."""
    return erode(dilate(mask, radius_y, radius_x), radius_y, radius_x)
