"""Reads a portrait's attributes back from its pixels, on the 16×16 grid of 8×8 cells (what the cell VAE keeps).

An attribute is read by template matching against the world's own renderer: for each value the attribute can take,
the portrait is rendered again with that value (same seed, so the same layout and background; the other attributes
as given), and the value whose render's cells are nearest to the image's cells, over the cells where the renders of
the different values disagree, is what the image shows. Face shape and skin tone are the identity; hair colour,
outfit colour, glasses, smile and hat can be edited. The layout is the source portrait's: an edit that keeps the
layout (what inversion and prompt-to-prompt aim at) is read in place.
"""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np

from lab import probe, world

IDENTITY = ("face_shape", "skin")
VALUES: dict[str, tuple[object, ...]] = {
    "face_shape": world.FACE_SHAPES,
    "skin": tuple(world.SKIN_TONES),
    "hair": tuple(world.HAIR_COLOURS),
    "outfit": world.OUTFIT_COLOURS,
    "glasses": (False, True),
    "smile": (False, True),
    "hat": (False, True),
}
# A cell takes part in reading an attribute when two of its values' renders differ there by more than this (RGB
# distance of the cell means): the parts that attribute draws, not the pixel noise.
DISAGREEMENT = 0.05
# A mask covers a cell when any of its pixels is set: a part's edge cells are mixed colours after the cell VAE.
CELL_COVER = 0.0


@functools.lru_cache(maxsize=512)
def _render_cells(face: world.Face, seed: int) -> np.ndarray:
    return probe.cell_colours(world.render_portrait(face, seed).image)


def cell_mask(mask: np.ndarray) -> np.ndarray:
    """[H, W] pixel mask → [16, 16] cells that it covers at all."""
    cells = mask.reshape(probe.CELLS, world.CELL, probe.CELLS, world.CELL).mean(axis=(1, 3))
    return cells > CELL_COVER


def read_attribute(image: np.ndarray, face: world.Face, seed: int, attribute: str) -> object:
    """The value of ``attribute`` whose render of ``face`` (seed ``seed``) is nearest to ``image``'s cells."""
    values = VALUES[attribute]
    renders = np.stack([_render_cells(replace(face, **{attribute: value}), seed) for value in values])
    spread = np.linalg.norm(renders[:, None] - renders[None, :], axis=-1).max(axis=(0, 1))
    region = spread > DISAGREEMENT
    cells = probe.cell_colours(image)
    distances = ((renders[:, region] - cells[region]) ** 2).sum(axis=(1, 2))
    return values[int(distances.argmin())]


def identity_kept(image: np.ndarray, face: world.Face, seed: int, edited: world.Face) -> bool:
    """Whether the image reads as the source ``face``'s face shape and skin tone (the other attributes as in
    ``edited``, the face the edit asked for)."""
    return all(read_attribute(image, edited, seed, name) == getattr(face, name) for name in IDENTITY)


def attribute_mask(face: world.Face, edited: world.Face, seed: int, attribute: str) -> np.ndarray:
    """The ground-truth pixels of the edited attribute: its part in the source and in the edited portrait (the
    hat's pixels when one is added, the shirt's when its colour changes)."""
    parts = {"face_shape": "face", "skin": "face", "outfit": "shirt", "smile": "mouth"}
    part = parts.get(attribute, attribute)
    masks = [world.render_portrait(f, seed).masks.get(part) for f in (face, edited)]
    return np.any([mask.astype(bool) for mask in masks if mask is not None], axis=0)


def cell_means(image: np.ndarray) -> np.ndarray:
    """The image as the cell VAE returns it: each 8×8 cell filled with its mean (what an exact inversion gives)."""
    return np.kron(probe.cell_colours(image), np.ones((world.CELL, world.CELL, 1), np.float32))


def change_outside(edit: np.ndarray, source: np.ndarray, mask: np.ndarray) -> float:
    """Mean |Δpixel| between the edit and the source's cell-VAE round trip, over the cells ``mask`` does not touch."""
    outside = ~np.kron(cell_mask(mask), np.ones((world.CELL, world.CELL), bool))
    return float(np.abs(edit - cell_means(source)).mean(-1)[outside].mean())
