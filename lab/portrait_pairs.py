"""Paired portraits for MCDM (Chen et al. 2024): the same person and background with one attribute changed.

A pair is a portrait x_A and its edit x_B rendered with the same seed (same layout, background and pixel noise) from
faces that differ in exactly one editable attribute: outfit colour, smile, hair colour, glasses or hat. Face shape
and skin tone (the identity) are never edited. The true changed region is where x_A and x_B differ. The prompts are
the world's captions: p (``prompt``) describes x_B, p_a (``source_prompt``) describes x_A.

Identities (face shape, skin tone) in ``HELD_OUT_IDENTITIES`` never appear in training pairs: the claims edit those.
``write_pairs_folder`` writes pairs in the pack's pairs-folder layout (``core.mcdm.pairs_folder``: condition/, gt/,
prompt.json), which the pack's MCDM training reads.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from lab import world

EDITS = ("outfit", "smile", "hair", "glasses", "hat")
HELD_OUT_IDENTITIES = frozenset({("oval", "dark"), ("square", "tan")})
# A pixel belongs to the changed region when a channel differs by more than this (the pair shares its noise).
CHANGE = 0.02


@dataclass(frozen=True)
class PortraitPair:
    """x_A (``source``) and x_B (``target``) [H, W, 3] in [0, 1], the changed region [H, W] bool, and prompts."""

    face: world.Face
    edited: world.Face
    seed: int
    attribute: str
    source: np.ndarray
    target: np.ndarray
    region: np.ndarray

    @property
    def prompt(self) -> str:
        return self.edited.caption

    @property
    def source_prompt(self) -> str:
        return self.face.caption


def edited_face(face: world.Face, attribute: str, rng: random.Random) -> world.Face:
    """``face`` with ``attribute`` changed: another outfit or hair colour, or the flag toggled."""
    current = getattr(face, attribute)
    if isinstance(current, bool):
        return replace(face, **{attribute: not current})
    choices = world.OUTFIT_COLOURS if attribute == "outfit" else tuple(world.HAIR_COLOURS)
    return replace(face, **{attribute: rng.choice([value for value in choices if value != current])})


def pair(face: world.Face, attribute: str, seed: int) -> PortraitPair:
    """The pair of ``face`` with ``attribute`` edited (the new value drawn from ``seed``), rendered with ``seed``."""
    edited = edited_face(face, attribute, random.Random(seed ^ 0xED17))
    source = world.render_portrait(face, seed).image
    target = world.render_portrait(edited, seed).image
    region = np.abs(source - target).max(axis=-1) > CHANGE
    return PortraitPair(face, edited, seed, attribute, source, target, region)


def random_pair(seed: int, held_out: bool) -> PortraitPair:
    """A pair from ``seed``: a training identity (``held_out`` False) or a held-out one, one attribute edited."""
    rng = random.Random(seed)
    while True:
        face = world.random_face(rng)
        if ((face.face_shape, face.skin) in HELD_OUT_IDENTITIES) == held_out:
            return pair(face, rng.choice(EDITS), seed)


def training_pairs(count: int, seed: int) -> list[PortraitPair]:
    return [random_pair(seed * 1_000_003 + index, held_out=False) for index in range(count)]


def held_out_pairs(per_edit: int, seed: int) -> list[PortraitPair]:
    """``per_edit`` pairs of held-out identities for each edit, in the order of ``EDITS`` repeated."""
    pairs: list[PortraitPair] = []
    for index in range(per_edit):
        for number, attribute in enumerate(EDITS):
            rng = random.Random(seed * 7919 + index * len(EDITS) + number)
            face = world.random_face(rng)
            while (face.face_shape, face.skin) not in HELD_OUT_IDENTITIES:
                face = world.random_face(rng)
            pairs.append(pair(face, attribute, seed + index * len(EDITS) + number))
    return pairs


def write_pairs_folder(folder: Path, pairs: list[PortraitPair]) -> Path:
    """Write ``pairs`` into a new folder in the pack's pairs-folder layout (condition/NNNNN.png, gt/NNNNN.png, one
    prompt.json line per pair, as ``core.mcdm.pairs_folder.append_pairs`` writes them) and return the folder.
    ``append_pairs`` appends one prompt at a time and rescans the folder for each call; every pair here has its own
    prompts, so the folder is written in one pass."""
    from PIL import Image

    from precise_edit.core.mcdm.pairs_folder import PROMPT_FILE, SOURCE_DIR, TARGET_DIR, PairRecord

    lines = []
    for sub in (SOURCE_DIR, TARGET_DIR):
        (folder / sub).mkdir(parents=True, exist_ok=False)
    for number, item in enumerate(pairs, start=1):
        name = f"{number:05d}.png"
        record = PairRecord(f"{SOURCE_DIR}/{name}", f"{TARGET_DIR}/{name}", item.prompt, item.source_prompt)
        for image, relative in ((item.source, record.source), (item.target, record.target)):
            Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8)).save(
                folder / relative, compress_level=1
            )
        lines.append(record.line() + "\n")
    (folder / PROMPT_FILE).write_text("".join(lines), encoding="utf-8")
    return folder
