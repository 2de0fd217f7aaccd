"""Reads a scene back from its pixels: which palette colours appear, where, in which shape and texture.

Works on the 16×16 grid of 8×8 cells (what the cell VAE keeps). An object of colour c is the set of cells whose mean
colour is nearest to c among the palette, the stripe white and the image's background; its position is the direction
of its centroid from the image centre; its shape is the world's shape template (circle, square, triangle) whose
cell mask, over a small search of centres and radii, overlaps the object's cells (stripe cells included) best.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab import world

CELLS = world.SIZE // world.CELL
# Two cells make an object: a small striped object keeps only two or three cells of its own colour (the stripes
# take every other row band, edge cells mix with the background). With three, the probe missed 21 of the 70 small
# striped objects of the world's own renders of 200 held-out captions (position read back 0.927; with two 0.987,
# and a colour absent from the scene read as present 0.2 % of the time instead of 0.1 %).
MIN_CELLS = 2


@dataclass(frozen=True)
class Reading:
    """What the probe read for one colour: cells found, position, shape, texture and the object's cell mask."""

    colour: str
    cells: int
    position: str | None
    shape: str | None
    texture: str | None
    mask: np.ndarray


def cell_colours(image: np.ndarray) -> np.ndarray:
    """[H, W, 3] → [16, 16, 3] cell means."""
    return image.reshape(CELLS, world.CELL, CELLS, world.CELL, 3).mean(axis=(1, 3))


def background_colour(cells: np.ndarray) -> np.ndarray:
    border = np.concatenate([cells[0], cells[-1], cells[1:-1, 0], cells[1:-1, -1]])
    return np.median(border, axis=0)


def cell_labels(cells: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Index of the nearest reference colour per cell; references: palette, 'stripe', 'background'."""
    names = [*world.COLOURS, "stripe", "background"]
    refs = np.array([*world.COLOURS.values(), world.STRIPE_COLOUR, background_colour(cells)], np.float32)
    distances = np.linalg.norm(cells[:, :, None, :] - refs[None, None], axis=-1)
    return distances.argmin(-1), names


def position_of(mask: np.ndarray) -> str:
    ys, xs = np.nonzero(mask)
    dx, dy = xs.mean() + 0.5 - CELLS / 2, ys.mean() + 0.5 - CELLS / 2
    if abs(dx) >= abs(dy):
        return "left" if dx < 0 else "right"
    return "top" if dy < 0 else "bottom"


RADII = np.arange(10.0, 30.0, 2.0)
OFFSETS = [(ox, oy) for ox in (-4.0, 0.0, 4.0) for oy in (-6.0, -2.0, 2.0, 6.0)]


def shape_of(region: np.ndarray) -> tuple[str, float]:
    """The best-fitting shape and its cell IoU, over radii and centres around the region's centroid."""
    ys, xs = np.nonzero(region)
    cx, cy = (xs.mean() + 0.5) * world.CELL, (ys.mean() + 0.5) * world.CELL
    grid = np.array([(cx + ox, cy + oy, radius) for ox, oy in OFFSETS for radius in RADII])[:, :, None, None]
    best, best_iou = world.SHAPES[0], -1.0
    for shape in world.SHAPES:
        pixels = world.shape_mask(shape, (grid[:, 0], grid[:, 1]), grid[:, 2]).astype(np.float32)
        templates = pixels.reshape(len(grid), CELLS, world.CELL, CELLS, world.CELL).mean(axis=(2, 4)) >= 0.5
        union = (templates | region).sum(axis=(1, 2))
        iou = (templates & region).sum(axis=(1, 2)) / np.maximum(union, 1)
        if iou.max() > best_iou:
            best, best_iou = shape, float(iou.max())
    return best, best_iou


def read_colour(image: np.ndarray, colour: str) -> Reading:
    """Read the object of ``colour`` (none found: position/shape/texture None)."""
    labels, names = cell_labels(cell_colours(image))
    own = labels == names.index(colour)
    if own.sum() < MIN_CELLS:
        return Reading(colour, int(own.sum()), None, None, None, own)
    ys, xs = np.nonzero(own)
    stripe = labels == names.index("stripe")
    near = np.zeros_like(own)
    near[max(ys.min() - 1, 0) : ys.max() + 2, max(xs.min() - 1, 0) : xs.max() + 2] = True
    region = own | (stripe & near)
    texture = "striped" if (stripe & region).sum() >= max(2, 0.2 * region.sum()) else "flat"
    shape, _ = shape_of(region)
    return Reading(colour, int(own.sum()), position_of(own), shape, texture, region)


@dataclass(frozen=True)
class ObjectScore:
    colour: bool
    position: bool
    shape: bool
    texture: bool

    @property
    def all(self) -> bool:
        return self.colour and self.position and self.shape and self.texture


def score_object(image: np.ndarray, obj: world.SceneObject) -> ObjectScore:
    """Whether the image shows ``obj``'s colour, and at that colour its position, shape and texture."""
    reading = read_colour(image, obj.colour)
    found = reading.position is not None
    return ObjectScore(
        found,
        found and reading.position == obj.position,
        found and reading.shape == obj.shape,
        found and reading.texture == obj.texture,
    )
