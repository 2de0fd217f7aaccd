"""Claim: the toy joint image–text encoder (DeltaEdit's DeltaSpace) matches held-out portraits with their captions.

The toy CLIP (``lab.models.toy_clip``, trained by ``lab.train_deltaedit``) embeds held-out portraits (seeds the
training never drew) and their full captions. Measured: caption → image retrieval, top-1 over a gallery of the
held-out portraits (a hit when the retrieved portrait has the caption's attributes: two portraits of the gallery may
share them), against chance (1 / gallery size); and per attribute, zero-shot: for each portrait, the captions that
differ from its own in that attribute only, the one nearest the image must be its own, against chance (1 / values).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from lab import portrait_captions, probe_portrait, world
from lab.checks import Check
from lab.train_deltaedit import HELD_OUT_SEEDS, toy_clip_state

GALLERY = 100
# Both numbers must clear chance by this factor (retrieval) or margin (per attribute) for the claim to hold.
RETRIEVAL_OVER_CHANCE = 10.0
ATTRIBUTE_MARGIN = 0.2


@dataclass
class RetrievalResult:
    """Top-1 caption → image over the gallery, and zero-shot accuracy per attribute."""

    top1: float
    gallery: int
    per_attribute: dict[str, float]


def held_out_portraits(count: int, offset: int = 0) -> list[world.Sample]:
    return [world.portrait(HELD_OUT_SEEDS + offset + index) for index in range(count)]


@torch.no_grad()
def measure(gallery: int = GALLERY) -> RetrievalResult:
    from lab.models import toy_clip

    model = toy_clip.build_model(toy_clip_state()).eval()
    tokenize = toy_clip.tokenizer()

    def texts(captions: list[str]) -> torch.Tensor:
        tokens = tokenize(captions, padding=True, return_tensors="pt")
        return F.normalize(model.text_projection(model.text_model(**tokens).pooler_output), dim=-1)

    samples = held_out_portraits(gallery)
    faces = [sample.labels["face"] for sample in samples]
    pixels = toy_clip.pixel_values(torch.from_numpy(np.stack([sample.image for sample in samples])))
    images = F.normalize(model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output), dim=-1)
    nearest = (texts([portrait_captions.caption(face) for face in faces]) @ images.T).argmax(dim=1).tolist()
    top1 = float(np.mean([faces[found] == faces[index] for index, found in enumerate(nearest)]))
    per_attribute = {}
    for attribute, values in probe_portrait.VALUES.items():
        hits = 0
        for index, face in enumerate(faces):
            options = texts([portrait_captions.caption(replace(face, **{attribute: value})) for value in values])
            hits += values[int((options @ images[index]).argmax())] == getattr(face, attribute)
        per_attribute[attribute] = hits / len(faces)
    return RetrievalResult(top1, gallery, per_attribute)


def checks(result: RetrievalResult) -> list[Check]:
    claim = "DeltaEdit joint encoder"
    chance = 1 / result.gallery
    rows = [
        Check(
            claim,
            f"caption → image top-1 over {result.gallery} held-out portraits",
            result.top1,
            f"chance {chance:.3f}; needs > {RETRIEVAL_OVER_CHANCE:g}× chance",
            result.top1 > RETRIEVAL_OVER_CHANCE * chance,
        )
    ]
    for attribute, accuracy in result.per_attribute.items():
        chance = 1 / len(probe_portrait.VALUES[attribute])
        rows.append(
            Check(
                claim,
                f"zero-shot {attribute} (caption differing in it only)",
                accuracy,
                f"chance {chance:.2f}; needs > chance + {ATTRIBUTE_MARGIN:g}",
                accuracy > chance + ATTRIBUTE_MARGIN,
            )
        )
    return rows
