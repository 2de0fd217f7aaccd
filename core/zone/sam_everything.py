"""SAM's "segment everything" (automatic mask generation), stacked into one mask batch.

segment-anything's ``SamAutomaticMaskGenerator`` prompts SAM with a regular grid of ``points_per_side``² points
(per crop layer), keeps the masks whose predicted IoU ≥ ``pred_iou_thresh`` and whose stability score

    stability = |{logits > t + offset}| / |{logits > t − offset}|   (t = 0, offset = stability_score_offset)

is ≥ ``stability_score_thresh``, removes duplicates by box NMS at ``box_nms_thresh`` and, with
``min_mask_region_area`` > 0, fills small holes and drops small islands. ZONE (``utils/mask_utils.py``) uses every
default: 32 points per side, batches of 64, 0.88, 0.95, 1.0, 0.7, no crop layers, no region clean-up.

This module runs that generator unchanged (one subclass hook counts the prompt batches for a progress callback and
lets the caller stop between batches) and returns the masks as one bool ``[N, H, W]`` tensor with their scores.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from segment_anything import SamAutomaticMaskGenerator
from segment_anything.modeling import Sam
from segment_anything.utils.amg import generate_crop_boxes

SortKey = Literal["area", "predicted_iou", "stability_score"]
SORT_KEYS: tuple[SortKey, ...] = ("area", "predicted_iou", "stability_score")


@dataclass(frozen=True)
class EverythingSettings:
    """SamAutomaticMaskGenerator's settings; the defaults are the released ones (and ZONE's)."""

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    min_mask_region_area: int = 0


@dataclass(frozen=True)
class Segments:
    """bool ``masks`` [N, H, W] and, per mask, its pixel ``area``, ``predicted_iou`` and ``stability_score``."""

    masks: torch.Tensor
    area: list[int]
    predicted_iou: list[float]
    stability_score: list[float]


class _SteppedGenerator(SamAutomaticMaskGenerator):
    """The released generator, calling ``on_batch(done, total)`` after each batch of point prompts."""

    def __init__(self, sam: Sam, settings: EverythingSettings, on_batch: Callable[[int, int], None]) -> None:
        super().__init__(sam, output_mode="binary_mask", **vars(settings))
        self._on_batch = on_batch
        self._done = 0
        self._total = 0

    def batches(self, height: int, width: int) -> int:
        """How many batches of point prompts ``generate`` runs on an image of ``height`` × ``width``."""
        _, layers = generate_crop_boxes((height, width), self.crop_n_layers, self.crop_overlap_ratio)
        return sum(math.ceil(len(self.point_grids[layer]) / self.points_per_batch) for layer in layers)

    def generate(self, image: np.ndarray) -> list[dict]:
        self._done, self._total = 0, self.batches(*image.shape[:2])
        return super().generate(image)

    def _process_batch(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202 (segment-anything's own signature)
        data = super()._process_batch(*args, **kwargs)
        self._done += 1
        self._on_batch(self._done, self._total)
        return data


def segment_everything(
    sam: Sam,
    image: np.ndarray,
    settings: EverythingSettings,
    sort_by: SortKey = "area",
    on_batch: Callable[[int, int], None] = lambda done, total: None,
) -> Segments:
    """Every mask SAM finds in the uint8 RGB ``image`` [H, W, 3], sorted by ``sort_by``, largest first (stable).

    ``on_batch(done, total)`` runs after each batch of point prompts; an exception it raises stops the run.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
    if sort_by not in SORT_KEYS:
        raise ValueError(f"sort_by must be one of {SORT_KEYS}, got {sort_by!r}")
    records = _SteppedGenerator(sam, settings, on_batch).generate(image)
    records = sorted(records, key=lambda record: -record[sort_by])
    height, width = image.shape[:2]
    if records:
        masks = torch.from_numpy(np.stack([record["segmentation"] for record in records]))
    else:
        masks = torch.zeros((0, height, width), dtype=torch.bool)
    return Segments(
        masks=masks,
        area=[int(record["area"]) for record in records],
        predicted_iou=[float(record["predicted_iou"]) for record in records],
        stability_score=[float(record["stability_score"]) for record in records],
    )
