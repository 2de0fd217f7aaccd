"""Region-IoU: the segment that best matches the rough edit mask (ZONE §4.3, Eq. 6).

For the rough edit mask M_b and the segments S_1 … S_N of a segmenter (SAM's "everything" masks),

    R(j) = area(S_j ∩ M_b) / area(S_j ∪ M_b),    k = argmax_j R(j),    M_f = S_k.

Ties go to the lowest index (the released code keeps the first strictly larger IoU). Beyond the paper, the union
of the ``top_k`` best segments, or of all segments with R(j) ≥ ``iou_floor``, can be selected instead; segments with
R(j) = 0 are never selected.

Small regions: the released code (``utils/mask_utils.py: filter_small_regions(mask, region_thres=64)``, which the
paper does not mention) removes small connected regions from M_b before the selection and from M_f after it. We do
the same with 4-connected components (scipy's default) of fewer than ``min_region_area`` = 64 pixels. The released
code compares area × label index with 64 (``measurements.sum(labels, labels, i)``), so it keeps small regions that
happen to have a large label; we compare the area.

No overlap: when no segment is selected for a rough mask (every R(j) = 0, or none reaches the floor), the result is
an error by default, or, with ``on_no_overlap="rough_mask"``, M_b itself (after the small-region filter). The
released code crashes there. An empty M_b (before or after the filter) is always an error.

Areas are counted eight pixels at a time: a bool mask's bytes are 0 or 1, so the sum of up to 255 int64 words
holds eight independent byte counts without carries, and the bytes of those sums add up to the pixel count.
"""

from typing import Literal, NamedTuple

import torch

from ..masks.bounding_box import bounding_box
from ..masks.connected_components import remove_small_regions

SelectionMode = Literal["argmax", "top_k", "iou_floor"]
NoOverlapPolicy = Literal["error", "rough_mask"]
SELECTION_MODES: tuple[str, ...] = ("argmax", "top_k", "iou_floor")
NO_OVERLAP_POLICIES: tuple[str, ...] = ("error", "rough_mask")
_LANE_BLOCK = 128
_CHUNK_WORDS = 1 << 20


class RegionSelection(NamedTuple):
    mask: torch.Tensor
    """bool [B, H, W]: M_f for each rough mask."""
    iou: torch.Tensor
    """float64 [B, N]: R(j) of every segment for each rough mask."""
    selected: list[list[int]]
    """The indices of the segments that make up each M_f (empty where M_b was used)."""
    used_rough_mask: list[bool]
    """Whether M_f is M_b because no segment was selected."""


def _byte_sum(words: torch.Tensor) -> torch.Tensor:
    return words.contiguous().view(torch.uint8).sum(-1, dtype=torch.int64)


def _count_ones(words: torch.Tensor) -> torch.Tensor:
    """Number of set bytes along the last axis of int64 words whose bytes are all 0 or 1."""
    blocked = words.shape[-1] // _LANE_BLOCK * _LANE_BLOCK
    lanes = words[..., :blocked].unflatten(-1, (-1, _LANE_BLOCK)).sum(-1)
    return _byte_sum(lanes) + _byte_sum(words[..., blocked:])


def _row_words(masks: torch.Tensor) -> torch.Tensor:
    """bool [N, H, W] → int64 [N, H, ⌈W / 8⌉], eight pixels of a row per word (rows zero-padded to a multiple of 8)."""
    padding = -masks.shape[-1] % 8
    if padding:
        masks = torch.cat([masks, masks.new_zeros(*masks.shape[:-1], padding)], -1)
    return masks.contiguous().view(torch.int64)


def region_iou(rough_mask: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """R(j) for bool ``rough_mask`` [B, H, W] and ``segments`` [N, H, W] → float64 [B, N] (0 where the union is empty).

    Intersections are counted only inside the bounding box of the rough masks, in bands of rows that keep the
    temporary AND of the segments with a rough mask small.
    """
    if rough_mask.shape[-2:] != segments.shape[-2:]:
        raise ValueError(
            f"rough_mask is {tuple(rough_mask.shape[-2:])} (H, W) but segments are {tuple(segments.shape[-2:])}: "
            "the segments must come from an image of the mask's size"
        )
    rough_words, segment_words = _row_words(rough_mask), _row_words(segments.to(rough_mask.device))
    segment_area = _count_ones(segment_words.flatten(1))
    rough_area = _count_ones(rough_words.flatten(1))
    intersection = torch.zeros(rough_mask.shape[0], segments.shape[0], dtype=torch.int64, device=rough_mask.device)
    box = bounding_box(rough_words != 0)
    if box is not None:
        rows, columns = box
        width = columns.stop - columns.start
        band = max(1, _CHUNK_WORDS // (segments.shape[0] * width))
        for index, words in enumerate(rough_words):
            for top in range(rows.start, rows.stop, band):
                band_rows = slice(top, min(top + band, rows.stop))
                both = segment_words[:, band_rows, columns] & words[band_rows, columns]
                intersection[index] += _count_ones(both.flatten(1))
    union = segment_area[None, :] + rough_area[:, None] - intersection
    return intersection.double() / union.clamp(min=1).double()


def _chosen(iou: torch.Tensor, mode: SelectionMode, top_k: int, iou_floor: float) -> torch.Tensor:
    """bool [B, N]: which segments each rough mask selects."""
    if mode == "argmax":
        chosen = torch.zeros_like(iou, dtype=torch.bool)
        chosen.scatter_(1, iou.argmax(1, keepdim=True), True)
        return chosen & (iou > 0)
    if mode == "top_k":
        if top_k < 1:
            raise ValueError(f"top_k must be ≥ 1, got {top_k}")
        order = torch.sort(iou, dim=1, descending=True, stable=True).indices[:, :top_k]
        chosen = torch.zeros_like(iou, dtype=torch.bool).scatter_(1, order, True)
        return chosen & (iou > 0)
    if mode == "iou_floor":
        if not 0.0 < iou_floor <= 1.0:
            raise ValueError(f"iou_floor must be in (0, 1], got {iou_floor}")
        return iou >= iou_floor
    raise ValueError(f"mode must be one of {SELECTION_MODES}, got {mode!r}")


def select_region(
    rough_mask: torch.Tensor,
    segments: torch.Tensor,
    mode: SelectionMode = "argmax",
    top_k: int = 1,
    iou_floor: float = 0.5,
    min_region_area: int = 64,
    on_no_overlap: NoOverlapPolicy = "error",
) -> RegionSelection:
    """M_f for each bool rough mask [B, H, W] from the bool segments [N, H, W] (see the module docstring)."""
    if on_no_overlap not in NO_OVERLAP_POLICIES:
        raise ValueError(f"on_no_overlap must be one of {NO_OVERLAP_POLICIES}, got {on_no_overlap!r}")
    if segments.shape[0] == 0:
        raise ValueError("segments is empty: expected at least one segment mask")
    for index, empty in enumerate((~rough_mask.flatten(1).any(1)).tolist()):
        if empty:
            raise ValueError(f"rough_mask {index} is empty (all zero): there is no edit region to refine")
    rough = remove_small_regions(rough_mask, min_region_area)
    for index, empty in enumerate((~rough.flatten(1).any(1)).tolist()):
        if empty:
            raise ValueError(
                f"rough_mask {index} only has regions smaller than min_region_area = {min_region_area} px: "
                "lower min_region_area or check the mask"
            )
    iou = region_iou(rough, segments)
    chosen = _chosen(iou, mode, top_k, iou_floor)
    masks, selected, used_rough = [], [], []
    for index in range(rough.shape[0]):
        picked = chosen[index].nonzero().squeeze(1)
        if picked.numel() == 0 and on_no_overlap == "error":
            raise ValueError(
                f"no segment overlaps rough_mask {index} enough for mode {mode!r} (best Region-IoU "
                f"{float(iou[index].max()):.4f}): check that the segments come from the same image, or set "
                "on_no_overlap to 'rough_mask' to keep the rough mask"
            )
        masks.append(segments.index_select(0, picked.to(segments.device)).any(0) if picked.numel() else rough[index])
        selected.append(picked.tolist())
        used_rough.append(picked.numel() == 0)
    fine = remove_small_regions(torch.stack(masks).to(rough.device), min_region_area)
    return RegionSelection(fine, iou, selected, used_rough)
