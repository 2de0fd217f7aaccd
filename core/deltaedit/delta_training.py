"""Text-free training of the Delta Mapper on image pairs (official ``scripts/train.py``, ``datasets/train_dataset.py``).

Each sample pairs an image i with another image j drawn uniformly from the others (the official sampler may also
draw j = i, a pair with no direction to learn) and builds

    condition = [ĉ_i ‖ (ĉ_j − ĉ_i) / max(‖ĉ_j − ĉ_i‖, 1e-5)],    target Δs = s_j − s_i,

from the L2-normalised CLIP image embeddings ĉ and the codes s of the generator's conditioning space. The mapper
takes (s_i, condition) and is trained with Adam (official lr 0.5, batch 64, β = (0.9, 0.999)) on
L = MSE + (1 − cos). No text is used: at inference the DeltaSpace text direction replaces (ĉ_j − ĉ_i).

Codes are divided by one scalar σ (the RMS of the centred codes, ``code_scale``) before they enter the mapper and
predictions are multiplied by it, so that the same learning rate suits spaces of any magnitude (CLIP-vision
``image_embeds`` have norms in the tens). σ = 1 is the official behaviour.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .delta_mapper import DeltaMapper, delta_mapper_loss

DIRECTION_EPS = 1e-5
DEFAULT_LEARNING_RATE = 0.5
DEFAULT_BATCH_SIZE = 64
FUSED_ADAM_DEVICES = ("cpu", "cuda")


def code_scale(codes: torch.Tensor) -> float:
    """σ = sqrt(mean((s − s̄)²)) over all images and channels; 1 when the codes do not vary."""
    centred = codes.double() - codes.double().mean(dim=0)
    scale = float(centred.pow(2).mean().sqrt())
    return scale if scale > 0 else 1.0


def delta_condition(clip_unit: torch.Tensor, direction_unit: torch.Tensor) -> torch.Tensor:
    """``[ĉ ‖ Δ̂]`` ``[B, 2d]`` from normalised image embeddings ``[B, d]`` and unit directions ``[B, d]`` or ``[d]``."""
    return torch.cat([clip_unit, direction_unit.expand_as(clip_unit)], dim=1)


def sample_pairs(
    codes: torch.Tensor, clip_unit: torch.Tensor, batch_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One batch of random pairs: source codes ``[B, D]``, conditions ``[B, 2d]`` and target Δs ``[B, D]``."""
    count = codes.shape[0]
    source = torch.randint(count, (batch_size,), generator=generator)
    other = (source + torch.randint(1, count, (batch_size,), generator=generator)) % count
    delta_clip = clip_unit[other] - clip_unit[source]
    direction = delta_clip / delta_clip.norm(dim=1, keepdim=True).clamp_min(DIRECTION_EPS)
    return codes[source], delta_condition(clip_unit[source], direction), codes[other] - codes[source]


def train_delta_mapper(
    mapper: DeltaMapper,
    codes: torch.Tensor,
    clip_embeddings: torch.Tensor,
    *,
    steps: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    seed: int = 0,
    scale: float = 1.0,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train ``mapper`` in place on codes ``[N, D]`` / CLIP image embeddings ``[N, d]``; return the loss per step.

    ``on_step(step, loss)`` is called after every optimiser step (1-based); raising in it stops training.
    """
    if codes.shape[0] != clip_embeddings.shape[0]:
        raise ValueError(f"{codes.shape[0]} codes but {clip_embeddings.shape[0]} CLIP embeddings")
    if codes.shape[0] < 2:
        raise ValueError("training pairs need at least two images")
    if codes.shape[1] != mapper.config.target_dim or clip_embeddings.shape[1] != mapper.config.clip_dim:
        raise ValueError(
            f"the mapper is sized for codes of {mapper.config.target_dim} and CLIP embeddings of "
            f"{mapper.config.clip_dim} channels, got {codes.shape[1]} and {clip_embeddings.shape[1]}"
        )
    device = next(mapper.parameters()).device
    scaled = (codes.float() / scale).to(device)
    clip_unit = F.normalize(clip_embeddings.float(), dim=1).to(device)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(mapper.parameters(), lr=learning_rate, fused=device.type in FUSED_ADAM_DEVICES)
    losses = []
    mapper.train()
    for step in range(1, steps + 1):
        source, condition, target = sample_pairs(scaled, clip_unit, batch_size, generator)
        loss = delta_mapper_loss(mapper(source, condition), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step, losses[-1])
    mapper.eval()
    return losses
