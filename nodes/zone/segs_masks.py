"""Impact Pack SEGS → a MASK batch: each segment's cropped mask pasted into a full-size canvas at its crop region.

SEGS is ``((H, W), [SEG, …])`` with ``SEG.cropped_mask`` a float [h, w] array or tensor and ``SEG.crop_region`` =
(x1, y1, x2, y2) the crop's place in the image (Impact Pack ``core.py``).
"""

from typing import Any

import torch


def segs_to_masks(segs: Any, name: str = "segs") -> torch.Tensor:
    """float [N, H, W] canvases, one per SEG; errors name ``name`` and the offending segment."""
    try:
        (height, width), items = segs
        height, width = int(height), int(width)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be Impact Pack SEGS: ((height, width), [SEG, …])") from None
    if not items:
        raise ValueError(f"{name} holds no segments")
    canvas = torch.zeros(len(items), height, width)
    for index, seg in enumerate(items):
        if not (hasattr(seg, "cropped_mask") and hasattr(seg, "crop_region")):
            raise ValueError(f"{name}[{index}] is not a SEG with cropped_mask and crop_region")
        x1, y1, x2, y2 = region = tuple(int(v) for v in seg.crop_region)
        if not (0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height):
            raise ValueError(f"{name}[{index}] crop_region {region} lies outside the {width}×{height} image")
        crop = torch.as_tensor(seg.cropped_mask, dtype=torch.float32)
        size = (y2 - y1, x2 - x1)
        if crop.dim() < 2 or crop.shape[-2:] != size or crop.numel() != size[0] * size[1]:
            raise ValueError(
                f"{name}[{index}] cropped_mask is {tuple(crop.shape)} but its crop_region {region} is "
                f"{size[0]}×{size[1]}"
            )
        canvas[index, y1:y2, x1:x2] = crop.reshape(size)
    return canvas
