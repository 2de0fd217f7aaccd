"""DiffEdit's editing mask (Couairon et al. 2023, as in diffusers' ``StableDiffusionDiffEditPipeline.generate_mask``),
computed on MCDM with its multi-condition guidance (Chen et al. 2024, §3.4).

For n independent noises ε_i and the source latent z₀, encoded to timestep t (DDIM schedule of ``steps`` steps at
``strength``: t = 481 for 50 steps at 0.5 on SD1.x):

    z_t,i = √ᾱ_t z₀ + √(1 − ᾱ_t) ε_i
    D     = mean_{i, c} | ε̃(z_t,i, p_b) − ε̃(z_t,i, p_a) |           (mean over the n samples and the latent channels)
    m     = clamp(D, 0, r · mean(D)) / (r · mean(D))                  (r = 3; the mean is over the batch and space)
    M     = 1[m > 0.5]  (binary, as diffusers)   or   m  (soft, as the released MCDM code)

ε̃(·, p) is the MCDM-guided prediction with prompt p (``core.mcdm.guidance``).
"""

from __future__ import annotations

import torch

TRAIN_TIMESTEPS = 1000
STEPS_OFFSET = 1


def encode_timestep(steps: int = 50, strength: float = 0.5) -> int:
    """The DDIM ("leading", steps_offset 1) timestep DiffEdit encodes to: timesteps[steps − int(steps · strength)]."""
    if steps < 1 or not 0.0 < strength <= 1.0:
        raise ValueError(f"need steps ≥ 1 and 0 < strength ≤ 1, got steps={steps}, strength={strength}")
    ratio = TRAIN_TIMESTEPS // steps
    timesteps = [index * ratio + STEPS_OFFSET for index in reversed(range(steps))]
    start = max(steps - min(int(steps * strength), steps), 0)
    return timesteps[min(start, steps - 1)]


def difference_map(target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """D = mean over samples and channels of |ε̃_target − ε̃_source|: ``[n, B, C, h, w]`` → ``[B, h, w]``."""
    if target.shape != source.shape or target.dim() != 5:
        raise ValueError(
            f"expected two [n, B, C, h, w] predictions, got {tuple(target.shape)} and {tuple(source.shape)}"
        )
    return (target - source).abs().mean(dim=(0, 2))


def diffedit_mask(
    difference: torch.Tensor, ratio: float = 3.0, binary: bool = False, threshold: float = 0.5
) -> torch.Tensor:
    """m = clamp(D, 0, r·mean(D)) / (r·mean(D)); binary: 1 where m > threshold, else 0."""
    if ratio <= 0:
        raise ValueError(f"ratio must be positive, got {ratio}")
    clamp = difference.mean() * ratio
    if not torch.isfinite(clamp) or clamp <= 0:
        return torch.zeros_like(difference)
    soft = torch.minimum(difference.clamp(min=0.0), clamp) / clamp
    return (soft > threshold).to(soft.dtype) if binary else soft
