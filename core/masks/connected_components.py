"""Connected components of binary masks (4-connectivity): labelling, hole filling, small-region removal.

Two foreground pixels belong to the same component when a path of horizontally or vertically adjacent foreground
pixels joins them (``scipy.ndimage.label``'s default structure). Each component is labelled with the smallest flat
index of its pixels in the ``[..., H, W]`` tensor, so labels are unique across a batch and do not depend on the
order of the computation.

The work is done on row runs (maximal horizontal segments of foreground) rather than pixels: a blob-like mask of a
megapixel has a few thousand runs. Two runs in adjacent rows are joined when they overlap; each overlap is one run of
``M[y] ∧ M[y+1]``, so the edges are found with a few whole-tensor passes. The runs are then merged by vectorised
union–find: every root that shares an edge with a smaller root is hooked onto the smallest one (a scatter-min),
then pointers are jumped until every run points at its root; this repeats until no edge joins two roots. The root of
a component ends as its first run in memory order, whose start is the component's smallest flat index.

Holes are the background components that do not touch the image border (a 4-connected flood fill of the background
from the border; OpenCV's ``findContours(RETR_EXTERNAL)`` + filled ``drawContours`` gives the same masks).
"""

from typing import NamedTuple

import torch

from .bounding_box import bounding_box


class RowRuns(NamedTuple):
    """The row runs of a mask, merged into components."""

    start: torch.Tensor
    """[R] flat index of each run's first pixel, in memory order."""
    end: torch.Tensor
    """[R] flat index of each run's last pixel."""
    root: torch.Tensor
    """[R] index of the first run of each run's component."""


def _flat_nonzero(mask: torch.Tensor) -> torch.Tensor:
    """Flat indices of the True entries of a sparse bool tensor, found 8 at a time through an int64 view."""
    flat = mask.flatten()
    flat = torch.cat([flat, flat.new_zeros(-flat.numel() % 8)])
    words = flat.view(torch.int64).nonzero().squeeze(1)
    word, byte = flat.view(-1, 8).index_select(0, words).nonzero().unbind(1)
    return words.index_select(0, word) * 8 + byte


def _boundaries(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices of the first and the last pixel of each run of the rows ``[L, W]``."""
    before = torch.zeros_like(rows)
    before[:, 1:] = rows[:, :-1]
    after = torch.zeros_like(rows)
    after[:, :-1] = rows[:, 1:]
    return _flat_nonzero(rows & ~before), _flat_nonzero(rows & ~after)


def _merge(count: int, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Roots (the smallest member) of the groups of ``count`` items that the edges (first[e], second[e]) join."""
    root = torch.arange(count, device=first.device)
    while True:
        while True:
            jumped = root.index_select(0, root)
            if torch.equal(jumped, root):
                break
            root = jumped
        a, b = root.index_select(0, first), root.index_select(0, second)
        if torch.equal(a, b):
            return root
        root.scatter_reduce_(0, torch.maximum(a, b), torch.minimum(a, b), "amin")


def row_runs(mask: torch.Tensor) -> RowRuns:
    """The row runs of a bool ``[..., H, W]`` mask and their 4-connected components."""
    if mask.dtype != torch.bool or mask.dim() < 2:
        raise ValueError(f"expected a bool mask [..., H, W], got {mask.dtype} of shape {tuple(mask.shape)}")
    height, width = mask.shape[-2:]
    images = mask.reshape(-1, height, width)
    start, end = _boundaries(images.reshape(-1, width))
    overlap_start = _boundaries((images[:, :-1] & images[:, 1:]).reshape(-1, width))[0]
    line = overlap_start.div(width, rounding_mode="floor")
    upper = overlap_start + line.div(max(height - 1, 1), rounding_mode="floor") * width
    run_above = torch.searchsorted(start, upper, right=True) - 1
    run_below = torch.searchsorted(start, upper + width, right=True) - 1
    return RowRuns(start, end, _merge(start.numel(), run_above, run_below))


def _run_pixels(start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """Flat indices of every pixel of the runs [start, end]."""
    length = end - start + 1
    offset = torch.arange(int(length.sum()), device=start.device)
    first = torch.cumsum(length, 0) - length
    return torch.repeat_interleave(start - first, length) + offset


def remove_small_regions(mask: torch.Tensor, min_area: int) -> torch.Tensor:
    """``mask`` without its 4-connected components of fewer than ``min_area`` pixels (the work is confined to the
    box around the mask's pixels, which holds every component)."""
    kept = mask.clone(memory_format=torch.contiguous_format)
    box = bounding_box(mask)
    if box is None:
        return kept
    rows, columns = box
    crop = kept[..., rows, columns].contiguous()
    runs = row_runs(crop)
    area = torch.zeros_like(runs.start).scatter_add_(0, runs.root, runs.end - runs.start + 1)
    small = area.index_select(0, runs.root) < min_area
    crop.view(-1)[_run_pixels(runs.start[small], runs.end[small])] = False
    kept[..., rows, columns] = crop
    return kept


def fill_holes(mask: torch.Tensor) -> torch.Tensor:
    """``mask`` with every background region that does not touch the image border set to foreground."""
    runs = row_runs(~mask)
    height, width = mask.shape[-2:]
    row = runs.start.div(width, rounding_mode="floor") % height
    on_border = (row == 0) | (row == height - 1) | (runs.start % width == 0) | (runs.end % width == width - 1)
    outside = torch.zeros_like(on_border).index_fill_(0, runs.root[on_border], True)
    hole = ~outside.index_select(0, runs.root)
    filled = mask.clone(memory_format=torch.contiguous_format)
    filled.view(-1)[_run_pixels(runs.start[hole], runs.end[hole])] = True
    return filled
