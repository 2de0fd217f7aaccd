"""Captions of toy portraits for the joint image–text encoder: the full description, or any subset of its phrases.

A portrait is 'a portrait of a round pale face with black hair, a red shirt, glasses, no hat, a smile'. Training
draws each phrase in or out at random, so that short texts that name one attribute ('a portrait of a face with
blonde hair') have been seen: the DeltaSpace directions DeltaEdit uses are differences of such texts. A binary
attribute that is absent is named as 'no glasses', 'no hat', 'no smile' when its phrase is drawn.
"""

from __future__ import annotations

import random
from dataclasses import replace

from lab import world
from lab.probe_portrait import VALUES

ATTRIBUTES = ("face", "hair", "outfit", "glasses", "hat", "smile")


def phrase(face: world.Face, attribute: str) -> str:
    """The words of one attribute of ``face``."""
    if attribute == "face":
        return f"{face.face_shape} {face.skin}"
    if attribute == "hair":
        return f"{face.hair} hair"
    if attribute == "outfit":
        return f"a {face.outfit} shirt"
    if attribute == "glasses":
        return "glasses" if face.glasses else "no glasses"
    if attribute == "hat":
        return "a hat" if face.hat else "no hat"
    if attribute == "smile":
        return "a smile" if face.smile else "no smile"
    raise ValueError(f"unknown attribute {attribute!r}; expected one of {ATTRIBUTES}")


def describe(face_words: str, phrases: list[str]) -> str:
    """'a portrait of a <face words> face with <phrases>' ('a portrait of a face' when nothing is named)."""
    article = "an" if face_words[:1] in ("a", "e", "i", "o", "u") else "a"
    head = f"a portrait of {article} {face_words} face" if face_words else "a portrait of a face"
    return head + (" with " + ", ".join(phrases) if phrases else "")


def caption(face: world.Face, named: tuple[str, ...] = ATTRIBUTES) -> str:
    """The caption naming the ``named`` attributes of ``face`` (all of them by default)."""
    face_words = phrase(face, "face") if "face" in named else ""
    return describe(face_words, [phrase(face, name) for name in ATTRIBUTES[1:] if name in named])


def random_named(rng: random.Random, share: float) -> tuple[str, ...]:
    """Each attribute with probability ``share``."""
    return tuple(name for name in ATTRIBUTES if rng.random() < share)


def hard_negative(face: world.Face, named: tuple[str, ...], rng: random.Random) -> str:
    """The caption naming ``named`` with one of them given another value: a text that
    differs from the true one in exactly one attribute (NegCLIP's hard negatives); with nothing named, one random
    attribute named with a wrong value."""
    attribute = rng.choice(named or ATTRIBUTES)
    named = named or (attribute,)
    fields = ("face_shape", "skin") if attribute == "face" else (attribute,)
    field = rng.choice(fields)
    other = rng.choice([value for value in VALUES[field] if value != getattr(face, field)])
    return caption(replace(face, **{field: other}), named)
