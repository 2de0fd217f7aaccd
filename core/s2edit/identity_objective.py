"""One step of S2Edit's identity fine-tuning objective (Liu et al. 2025, §3.2), on tensors and a noise predictor.

Each subject s (the identity [I] and, for compositional editing, an attribute [A]) draws a clean latent x₀ from its
images, a timestep t uniformly among the model's noise levels σ_t and noise ε ~ N(0, I); with its enhanced prompt
P̃_s ("a photo of a [I] lady with glasses") a step minimises

    L = Σ_s  ‖ε − ε_θ(x₀ + σ_t ε, t, τ_θ(P̃_s))‖²  +  λ |cos(e_P, e_[s])|,

the reconstruction L_recons averaged over elements (``diffusion_loss``) and the semantic term L_semantic =
‖Proj_{e_P}(e_[s])‖ / ‖e_[s]‖ = |cos(e_P, e_[s])| (``orthogonality_loss``), with e_P the source prompt's sentence
embedding and e_[s] the placeholder's embedding; λ = 0.1 in the paper. With λ = 0 the term is left out of L (and
so of the gradient) while its cosine is still measured.

Spatial control, A*_[I] = A_[I] ⊙ M_obj in every cross-attention layer at every step, is part of ε_θ: the caller's
``predict_noise`` runs the UNet with the placeholder's attention columns masked (``core.attention.token_mask``),
so [I]'s attention value reaches ε̂, and receives gradient, only inside M_obj.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .diffusion_loss import epsilon_loss, noisy_sample
from .orthogonality_loss import absolute_cosine

PredictNoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""ε_θ: ``(x_t [1, C, h, w], σ_t [1]) -> ε̂``, conditioned on the subject's enhanced prompt."""


@dataclass(frozen=True, kw_only=True)
class NoisedLatent:
    """One subject's draw for a step: x₀ ``[1, C, h, w]``, ε of the same shape and σ_t ``[1]``."""

    clean: torch.Tensor
    noise: torch.Tensor
    sigma: torch.Tensor

    @property
    def noisy(self) -> torch.Tensor:
        """``x_t = x₀ + σ_t ε``."""
        return noisy_sample(self.clean, self.noise, self.sigma)


def draw_noised_latent(latents: torch.Tensor, sigmas: torch.Tensor, generator: torch.Generator) -> NoisedLatent:
    """x₀ uniformly among ``latents`` ``[N, C, h, w]``, then t uniformly among ``sigmas``, then ε, in that order from
    ``generator`` (a CPU generator, so a seed gives the same draws on every device)."""
    pick = int(torch.randint(latents.shape[0], (1,), generator=generator))
    clean = latents[pick : pick + 1]
    t = int(torch.randint(len(sigmas), (1,), generator=generator))
    sigma = sigmas[t].clone().to(clean.device).reshape(1)
    noise = torch.randn(clean.shape, generator=generator).to(clean)
    return NoisedLatent(clean=clean, noise=noise, sigma=sigma)


@dataclass(frozen=True, kw_only=True)
class SubjectTerm:
    """What one subject brings to a step: its draw, ε_θ under its prompt P̃_s, e_P and e_[s] (both ``[width]``)."""

    sample: NoisedLatent
    predict_noise: PredictNoise
    prompt_embedding: torch.Tensor
    token_embedding: torch.Tensor


@dataclass(frozen=True)
class StepLoss:
    """L (to backpropagate), Σ_s L_recons, and |cos(e_P, e_[s])| of each subject in the order given."""

    total: torch.Tensor
    reconstruction: float
    cosines: tuple[float, ...]


def identity_step_loss(terms: Sequence[SubjectTerm], weight: float) -> StepLoss:
    """``L = Σ_s L_recons,s + λ |cos(e_P, e_[s])|`` with λ = ``weight`` (the term is left out when λ ≤ 0), on the
    device of the first subject's latent."""
    if not terms:
        raise ValueError("identity_step_loss needs at least one subject")
    total = torch.zeros((), device=terms[0].sample.clean.device)
    reconstruction = 0.0
    cosines = []
    for term in terms:
        noisy = term.sample.noisy
        loss = epsilon_loss(term.predict_noise(noisy, term.sample.sigma), term.sample.noise)
        reconstruction += float(loss.detach())
        cosine = absolute_cosine(term.prompt_embedding, term.token_embedding)
        cosines.append(float(cosine.detach()))
        if weight > 0:
            loss = loss + weight * cosine
        total = total + loss.to(total.device)
    return StepLoss(total, reconstruction, tuple(cosines))
