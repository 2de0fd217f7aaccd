"""A trained DeltaEdit model and the edit it applies to conditioning codes (paper Eq. 4, 7).

For a source image with code s (the conditioning embedding) and normalised DeltaSpace image embedding ĉ, and a
DeltaSpace direction Δ (text Δt, or image Δi),

    Δs' = σ · DeltaMapper(s/σ, [ĉ ‖ Δ/‖Δ‖]),        Δs'_k ← 0 where |R_k · Δ| < τ,        s' = s + α · Δs',

with σ the training code scale, R the relevance rows, τ the disentanglement threshold and α the strength (the
official code uses α = 1). α = 0 returns s itself. With a relative threshold ρ, τ = ρ · max_j |R_j · Δ|
(``delta_relevance``).

The straightforward baseline skips the mapper and moves s along the text direction itself, which is only defined
when the conditioning space is the DeltaSpace CLIP's own image space: Δs' = ‖s‖ · Δ, the change of a unit
embedding rescaled to the norm of s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .clip_delta import DeltaDirection
from .delta_mapper import DeltaMapper
from .delta_relevance import disentangle
from .delta_training import delta_condition


@dataclass(kw_only=True)
class DeltaEditModel:
    """A Delta Mapper with what it needs at inference: code scale σ, relevance rows ``[D, d]``, model fingerprints."""

    mapper: DeltaMapper
    code_scale: float
    relevance: torch.Tensor
    clip_fingerprint: str
    target_fingerprint: str
    training: dict = field(default_factory=dict)

    @property
    def target_dim(self) -> int:
        return self.mapper.config.target_dim

    @property
    def clip_dim(self) -> int:
        return self.mapper.config.clip_dim

    def check_direction(self, direction: DeltaDirection) -> None:
        """Refuse a direction from another DeltaSpace CLIP than the one the mapper was trained with."""
        if direction.clip_dim != self.clip_dim:
            raise ValueError(
                f"the delta is a {direction.clip_dim}-d direction but the Delta Mapper was trained with a "
                f"{self.clip_dim}-d joint CLIP: use the same joint CLIP for both"
            )
        if direction.clip_fingerprint and self.clip_fingerprint and direction.clip_fingerprint != self.clip_fingerprint:
            raise ValueError(
                "the delta was computed with another joint CLIP than the one the Delta Mapper was trained with "
                f"(fingerprints {direction.clip_fingerprint} and {self.clip_fingerprint}): use the same joint CLIP"
            )


def predict_delta(
    model: DeltaEditModel,
    codes: torch.Tensor,
    clip_embeddings: torch.Tensor,
    direction: DeltaDirection,
    *,
    threshold: float = 0.0,
    relative: bool = False,
) -> torch.Tensor:
    """Δs' ``[B, D]`` for codes ``[B, D]``, DeltaSpace image embeddings ``[B, d]`` and a direction; ``threshold``
    is τ, or ρ with ``relative``."""
    model.check_direction(direction)
    if codes.shape[-1] != model.target_dim:
        raise ValueError(
            f"the conditioning embedding has {codes.shape[-1]} channels but the Delta Mapper was trained for "
            f"{model.target_dim}: use the CLIP vision model it was trained with"
        )
    if clip_embeddings.shape[-1] != model.clip_dim:
        raise ValueError(
            f"the image embeddings have {clip_embeddings.shape[-1]} dims, the mapper expects {model.clip_dim}"
        )
    parameter = next(model.mapper.parameters())
    clip_unit = F.normalize(clip_embeddings.float(), dim=-1)
    condition = delta_condition(clip_unit, direction.unit.float().reshape(1, -1)).to(parameter)
    with torch.no_grad():
        delta = model.mapper(codes.to(parameter) / model.code_scale, condition) * model.code_scale
    delta = delta.to(codes.device, torch.float32)
    return disentangle(
        delta,
        model.relevance.to(codes.device),
        direction.raw.to(codes.device),
        threshold=threshold,
        relative=relative,
    )


def straightforward_delta(codes: torch.Tensor, direction: DeltaDirection) -> torch.Tensor:
    """The baseline Δs' = ‖s‖ · Δ; codes ``[B, D]`` must live in the direction's own ``D``-dim space."""
    if codes.shape[-1] != direction.clip_dim:
        raise ValueError(
            f"the straightforward edit adds the {direction.clip_dim}-d DeltaSpace direction to the conditioning "
            f"embedding directly, which has {codes.shape[-1]} channels: it needs the same CLIP for both "
            "(or use the Delta Mapper)"
        )
    return codes.float().norm(dim=-1, keepdim=True) * direction.raw.to(codes.device, torch.float32)


def apply_delta(codes: torch.Tensor, delta: torch.Tensor, strength: float) -> torch.Tensor:
    """s' = s + α Δs' in the codes' dtype; α = 0 returns ``codes`` itself."""
    if strength == 0:
        return codes
    return (codes.float() + strength * delta.float()).to(codes.dtype)
