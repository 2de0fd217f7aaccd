"""Null-text inversion (Mokady et al., CVPR 2023) and classifier-free guided DDIM sampling from an inverted latent.

Classifier-free guidance with source prompt C, null-text embedding ∅ and scale w (7.5 in the paper):

    ε̃(x, σ; ∅) = ε_θ(x, σ; ∅) + w · (ε_θ(x, σ; C) − ε_θ(x, σ; ∅)).

Plain DDIM inversion (``core.s2edit.ddim_inversion``, guidance 1 with C) gives the pivot trajectory x*_0, …, x*_N, but
sampling back from x*_N with w = 7.5 drifts away from it. Null-text inversion optimises one ∅ per sampling step
i = 0..N−1 (from σ_k to σ_{k−1}, k = N − i), starting from x̄_N = x*_N and ∅ = the null text's embedding:

    ∅ ← the previous step's ∅; a fresh Adam with learning rate lr_i = 10⁻² · (1 − i / 2N)
    ε_c = ε_θ(x̄_k, σ_k; C), computed once without gradient
    up to J (inner steps) times:
        x_rec = x̄_k + (σ_{k−1} − σ_k) · ε̃(x̄_k, σ_k; ∅)                (DDIM step, see core.s2edit.ddim_inversion)
        L = ‖z(x_rec) − z(x*_{k−1})‖² / n,   z(x) = x / √(1 + σ_{k−1}²)   (MSE of the UNet-space latents)
        stop when L < ε + 10⁻³ · i / N;  otherwise one Adam step on ∅ (gradients reach ∅ only)
    ∅_k = ∅;  x̄_{k−1} = x̄_k + (σ_{k−1} − σ_k) · ε̃(x̄_k, σ_k; ∅_k)

Reconstruction (and, later, prompt-to-prompt editing) replays the last line from x*_N with the stored ∅_k.

Facts from the original notebook (``null_text_w_ptp.ipynb``, 50 steps): lr = 10⁻² · (1 − i/100), early stop at
ε + i · 2·10⁻⁵ with ε = 10⁻⁵, J = 10, MSE on the variance-preserving latents. Deviations, each with its reason:

- the two schedules are written as fractions of N, so they equal the notebook's at N = 50 and keep their shape
  for other step counts;
- the early stop is tested before the Adam step (the notebook tests the same loss after stepping): the stored ∅
  is the one whose loss was measured, the stopping iteration's x_rec is x̄_{k−1} without another UNet call, and an
  already good ∅ costs no backward pass;
- ε_c is reused for x̄_{k−1} (the notebook evaluates C again in a batch of two);
- the backward pass is of n·L with Adam's ε scaled by n too: the same updates in exact arithmetic, but gradients
  that do not underflow in a half-precision UNet.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from .ddim_inversion import DDIMSchedule, StepCallback, ddim_step, to_variance_preserving

NOTEBOOK_LEARNING_RATE = 1e-2
NOTEBOOK_THRESHOLD_GROWTH = 1e-3
ADAM_EPSILON = 1e-8


class GuidedPredictor(Protocol):
    """ε̂ of the source prompt C and of the null prompt, for a σ-space sample ``x`` at noise level ``sigma``.

    ``null`` replaces the null prompt's text embedding; ``None`` keeps the predictor's own negative prompt.
    """

    def conditional(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor: ...

    def unconditional(self, x: torch.Tensor, sigma: torch.Tensor, null: torch.Tensor | None) -> torch.Tensor: ...

    def both(
        self, x: torch.Tensor, sigma: torch.Tensor, null: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ε_c, ε_∅)`` from one batched UNet call."""
        ...


@dataclass(frozen=True)
class NullTextSettings:
    guidance: float = 7.5
    inner_steps: int = 10
    epsilon: float = 1e-5
    learning_rate: float = NOTEBOOK_LEARNING_RATE


@dataclass(frozen=True)
class NullTextResult:
    """Per sampling step i (σ_N → σ_{N−1} first): the optimised ∅, its loss, how many guided evaluations of ∅ it
    took and whether it stopped early (below the threshold) rather than after ``inner_steps`` Adam steps.

    ``reconstruction`` is x̄_0 (σ-space); ``unet_evaluations`` counts per-image UNet forward passes and
    ``backward_passes`` the backward passes through the UNet, both for the optimisation only.
    """

    null_embeddings: tuple[torch.Tensor, ...]
    losses: tuple[float, ...]
    iterations: tuple[int, ...]
    early_stopped: tuple[bool, ...]
    unet_evaluations: int
    backward_passes: int
    reconstruction: torch.Tensor


def classifier_free_guidance(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, guidance: float) -> torch.Tensor:
    """ε̃ = ε_∅ + w (ε_c − ε_∅)."""
    return eps_uncond + guidance * (eps_cond - eps_uncond)


def learning_rate(step: int, steps: int, base: float = NOTEBOOK_LEARNING_RATE) -> float:
    """lr_i = base · (1 − i / 2N): the notebook's 10⁻² · (1 − i/100) at N = 50."""
    return base * (1.0 - step / (2.0 * steps))


def early_stop_threshold(step: int, steps: int, epsilon: float) -> float:
    """ε + 10⁻³ · i / N: the notebook's ε + i · 2·10⁻⁵ at N = 50."""
    return epsilon + NOTEBOOK_THRESHOLD_GROWTH * step / steps


def reconstruction_loss(x_rec: torch.Tensor, pivot: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """‖z(x_rec) − z(pivot)‖² summed (n·L): the squared error of the UNet-space latents at noise level σ."""
    return (to_variance_preserving(x_rec, sigma) - to_variance_preserving(pivot, sigma)).square().sum()


@dataclass(frozen=True, kw_only=True)
class _StepOutcome:
    null: torch.Tensor
    x_next: torch.Tensor
    eps: torch.Tensor
    loss: float
    iterations: int
    early_stopped: bool
    evaluations: int


def _optimise_step(
    predictor: GuidedPredictor,
    x: torch.Tensor,
    null: torch.Tensor,
    *,
    sigma: torch.Tensor,
    sigma_prev: torch.Tensor,
    pivot: torch.Tensor,
    rate: float,
    threshold: float,
    settings: NullTextSettings,
) -> _StepOutcome:
    """One sampling step σ → σ_prev: optimise ∅ from ``null`` until the guided step lands within ``threshold``."""
    elements = x.numel()
    with torch.no_grad():
        eps_cond = predictor.conditional(x, sigma)
    null = null.detach().clone().requires_grad_(True)
    optimiser = torch.optim.Adam([null], lr=rate, eps=ADAM_EPSILON * elements)
    for iteration in range(1, settings.inner_steps + 1):
        guided = classifier_free_guidance(predictor.unconditional(x, sigma, null), eps_cond, settings.guidance)
        x_rec = ddim_step(x, guided, sigma, sigma_prev)
        loss = reconstruction_loss(x_rec, pivot, sigma_prev)
        loss_value = loss.item() / elements
        if loss_value < threshold:
            return _StepOutcome(
                null=null.detach(),
                x_next=x_rec.detach(),
                eps=guided.detach(),
                loss=loss_value,
                iterations=iteration,
                early_stopped=True,
                evaluations=1 + iteration,
            )
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    null = null.detach()
    with torch.no_grad():
        eps = classifier_free_guidance(predictor.unconditional(x, sigma, null), eps_cond, settings.guidance)
        x_next = ddim_step(x, eps, sigma, sigma_prev)
        loss_value = reconstruction_loss(x_next, pivot, sigma_prev).item() / elements
    return _StepOutcome(
        null=null,
        x_next=x_next,
        eps=eps,
        loss=loss_value,
        iterations=settings.inner_steps,
        early_stopped=False,
        evaluations=settings.inner_steps + 2,
    )


def optimise_null_text(
    predictor: GuidedPredictor,
    trajectory: torch.Tensor,
    schedule: DDIMSchedule,
    *,
    null: torch.Tensor,
    settings: NullTextSettings,
    on_step: StepCallback | None = None,
) -> NullTextResult:
    """Optimise one null-text embedding per step so that guided DDIM sampling retraces ``trajectory`` (x*_0..x*_N).

    ``null`` is the null text's embedding to start from; it is not modified.
    """
    steps = schedule.steps
    if trajectory.shape[0] != steps + 1:
        raise ValueError(f"the trajectory has {trajectory.shape[0]} latents, the schedule needs {steps + 1}")
    sigmas = schedule.sigmas.to(trajectory.device)
    x = trajectory[-1]
    outcomes: list[_StepOutcome] = []
    for i in range(steps):
        sigma = sigmas[steps - i]
        outcome = _optimise_step(
            predictor,
            x,
            null,
            sigma=sigma,
            sigma_prev=sigmas[steps - i - 1],
            pivot=trajectory[steps - i - 1],
            rate=learning_rate(i, steps, settings.learning_rate),
            threshold=early_stop_threshold(i, steps, settings.epsilon),
            settings=settings,
        )
        outcomes.append(outcome)
        if on_step is not None:
            on_step(i, x - sigma * outcome.eps)
        x, null = outcome.x_next, outcome.null
    return NullTextResult(
        null_embeddings=tuple(o.null for o in outcomes),
        losses=tuple(o.loss for o in outcomes),
        iterations=tuple(o.iterations for o in outcomes),
        early_stopped=tuple(o.early_stopped for o in outcomes),
        unet_evaluations=x.shape[0] * sum(o.evaluations for o in outcomes),
        backward_passes=sum(o.iterations - o.early_stopped for o in outcomes),
        reconstruction=x,
    )


@torch.no_grad()
def guided_ddim_sample(
    predictor: GuidedPredictor,
    x: torch.Tensor,
    schedule: DDIMSchedule,
    *,
    guidance: float,
    nulls: Sequence[torch.Tensor | None],
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """Guided DDIM sampling from the σ-space sample ``x`` at σ_N down to σ_0, with the null ``nulls[i]`` at step i."""
    steps = schedule.steps
    if len(nulls) != steps:
        raise ValueError(f"{len(nulls)} null embeddings for a schedule of {steps} steps")
    sigmas = schedule.sigmas.to(x.device)
    for i, null in enumerate(nulls):
        sigma = sigmas[steps - i]
        eps_cond, eps_uncond = predictor.both(x, sigma, null)
        eps = classifier_free_guidance(eps_uncond, eps_cond, guidance)
        if on_step is not None:
            on_step(i, x - sigma * eps)
        x = ddim_step(x, eps, sigma, sigmas[steps - i - 1])
    return x
