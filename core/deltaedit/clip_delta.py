"""Directions in CLIP DeltaSpace: the text difference Δt of two prompts and the image difference Δi of two images.

Text (official ``utils/map_tool.py:GetDt``): each prompt p is written into the 79 ImageNet templates T (the 80 of
CLIP's zero-shot evaluation minus 'a photo of many {}.'), and

    t(p) = normalize( mean_{τ∈T} normalize(E_text(τ(p))) ),        Δt = t(target) − t(source).

Without templates t(p) = normalize(E_text(p)). Images: Δi = normalize(E_image(x_j)) − normalize(E_image(x_i)).
The raw Δ is what the disentanglement threshold is compared against; the mapper's condition uses Δ/‖Δ‖.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

IMAGENET_TEMPLATES: tuple[str, ...] = (
    "a bad photo of a {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a plushie {}.",
    "a photo of the nice {}.",
    "a photo of the small {}.",
    "a photo of the weird {}.",
    "the cartoon {}.",
    "art of the {}.",
    "a drawing of the {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "the plushie {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
    "graffiti of the {}.",
    "a toy {}.",
    "itap of my {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "a tattoo of the {}.",
)

ZERO_DIRECTION_NORM = 1e-6


@dataclass(frozen=True, kw_only=True)
class DeltaDirection:
    """A DeltaSpace direction: ``raw`` Δ and ``unit`` Δ/‖Δ‖ (``[clip_dim]``), what it came from, and the CLIP."""

    raw: torch.Tensor
    unit: torch.Tensor
    source: str
    target: str
    kind: str
    clip_fingerprint: str

    @property
    def clip_dim(self) -> int:
        return int(self.raw.shape[-1])


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Each row divided by its L2 norm."""
    return x / x.norm(dim=-1, keepdim=True)


def prompt_embedding(
    encode_texts: Callable[[Sequence[str]], torch.Tensor], prompt: str, use_templates: bool = True
) -> torch.Tensor:
    """``t(p)``: the normalised mean of the normalised template embeddings (or of the prompt alone)."""
    texts = [template.format(prompt) for template in IMAGENET_TEMPLATES] if use_templates else [prompt]
    embeddings = unit_rows(encode_texts(texts).float())
    return F.normalize(embeddings.mean(dim=0), dim=0)


def _direction(raw: torch.Tensor, source: str, target: str, *, kind: str, fingerprint: str) -> DeltaDirection:
    if not torch.isfinite(raw).all():
        raise ValueError(f"the {kind} direction from {source!r} to {target!r} is not finite (NaN or inf)")
    norm = float(raw.norm())
    if norm < ZERO_DIRECTION_NORM:
        raise ValueError(
            f"the {kind} direction from {source!r} to {target!r} is zero (‖Δ‖ = {norm:.2e}): the two {kind}s embed "
            "identically, so there is no edit direction; make the target describe the change"
        )
    return DeltaDirection(
        raw=raw, unit=raw / norm, source=source, target=target, kind=kind, clip_fingerprint=fingerprint
    )


def text_direction(
    encode_texts: Callable[[Sequence[str]], torch.Tensor],
    source: str,
    target: str,
    *,
    use_templates: bool = True,
    clip_fingerprint: str = "",
) -> DeltaDirection:
    """Δt = t(target) − t(source); empty or identical prompts are refused before anything is encoded."""
    source, target = source.strip(), target.strip()
    for name, text in (("source text", source), ("target text", target)):
        if not text:
            raise ValueError(f"the {name} is empty: DeltaEdit needs a source and a target description")
    if source == target:
        raise ValueError(
            f"the source and target texts are identical ({source!r}), so Δt = 0; put the attribute to add in the "
            "target, e.g. source 'face', target 'face with smile'"
        )
    raw = prompt_embedding(encode_texts, target, use_templates) - prompt_embedding(encode_texts, source, use_templates)
    return _direction(raw, source, target, kind="text", fingerprint=clip_fingerprint)


def image_direction(
    source_embedding: torch.Tensor,
    target_embedding: torch.Tensor,
    source: str = "source image",
    target: str = "target image",
    clip_fingerprint: str = "",
) -> DeltaDirection:
    """Δi = normalize(e_target) − normalize(e_source) for two image embeddings ``[clip_dim]`` (or ``[1, clip_dim]``)."""
    source_vector, target_vector = source_embedding.float().reshape(-1), target_embedding.float().reshape(-1)
    if source_vector.shape != target_vector.shape:
        raise ValueError(
            f"the two image embeddings differ in size: {tuple(source_embedding.shape)} and "
            f"{tuple(target_embedding.shape)}"
        )
    raw = F.normalize(target_vector, dim=0) - F.normalize(source_vector, dim=0)
    return _direction(raw, source, target, kind="image", fingerprint=clip_fingerprint)
