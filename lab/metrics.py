"""Numbers the claims share: IoU of masks, and the cell mask of an object read back from an image."""

from __future__ import annotations

import numpy as np

from lab import probe, world


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    a, b = a.astype(bool), b.astype(bool)
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def to_pixels(cells: np.ndarray) -> np.ndarray:
    """A [16, 16] cell mask at image resolution (nearest)."""
    return np.kron(cells.astype(np.uint8), np.ones((world.CELL, world.CELL), np.uint8)).astype(bool)


def object_region(image: np.ndarray, colour: str) -> np.ndarray:
    """Pixels of the object of ``colour`` as the probe reads it (its colour cells and its stripes)."""
    return to_pixels(probe.read_colour(image, colour).mask)


def as_numpy_image(image: object) -> np.ndarray:
    """A ComfyUI IMAGE batch's first image (or one image) as [H, W, 3] float numpy."""
    array = image.detach().cpu().float().numpy() if hasattr(image, "detach") else np.asarray(image)
    return array[0] if array.ndim == 4 else array
