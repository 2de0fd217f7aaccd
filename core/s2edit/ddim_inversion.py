"""Deterministic DDIM sampling and inversion in ComfyUI's σ-parameterisation of ε-prediction models.

Two parameterisations of the same forward process, with ᾱ_t the cumulative product of (1 − β) at timestep t:

    diffusers (variance preserving):  z_t = √ᾱ_t · z_0 + √(1 − ᾱ_t) · ε
    ComfyUI (variance exploding):     x_t = z_t / √ᾱ_t = z_0 + σ_t · ε,      σ_t = √((1 − ᾱ_t) / ᾱ_t)

so z = x / √(1 + σ²). ComfyUI's ε-models take ``x`` and ``σ`` and feed the UNet ``x / √(1 + σ²)`` (= z) at the
timestep t(σ); an :data:`EpsilonPredictor` here has that calling convention.

DDIM step (η = 0) from noise level σ to σ' with the noise estimate ε̂:

    diffusers:  z' = √ᾱ' · (z − √(1 − ᾱ) ε̂) / √ᾱ + √(1 − ᾱ') ε̂
    σ-space:    x' = x + (σ' − σ) ε̂          (divide the line above by √ᾱ': x̂_0 = x − σ ε̂, x' = x̂_0 + σ' ε̂)

It is an Euler step of dx/dσ = ε̂ and serves both directions. Sampling goes σ_k → σ_{k−1} with ε̂ = ε_θ(z_k, τ_k).
Inversion goes σ_{k−1} → σ_k and, exactly as diffusers' ``DDIMInverseScheduler`` pipelines and the null-text
inversion notebook do, evaluates the noise at the *destination* timestep on the current sample:

    x_k = x_{k−1} + (σ_k − σ_{k−1}) · ε_θ(z_{k−1}, τ_k),      z_{k−1} = x_{k−1} / √(1 + σ_{k−1}²),

which in the σ-space calling convention is ε̂(x_{k−1} · √(1 + σ_k²) / √(1 + σ_{k−1}²), σ_k).

Schedule (diffusers ``DDIMScheduler`` / ``DDIMInverseScheduler``, ``timestep_spacing="leading"``): with T training
timesteps and N steps, Δ = T // N and τ_k = (k − 1)·Δ + steps_offset for k = 1..N (Stable Diffusion:
steps_offset = 1, so 50 steps give 1, 21, …, 981). τ_0 stands for "before the first step", whose ᾱ is 1 with
``set_alpha_to_one`` and ᾱ[0] without (Stable Diffusion and null-text inversion: without, so σ_0 = σ[0] ≈ 0.029).
σ_k is the model's σ table at τ_k. As in diffusers, the clean latent is the sample at σ_0: x_0 = z_0 · √(1 + σ_0²).
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch

EpsilonPredictor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""ε̂(x, σ) for a σ-space sample ``x`` at noise level ``σ`` (a 0-dim tensor)."""

StepCallback = Callable[[int, torch.Tensor], None]
"""Called after each step with the step index and that step's x̂_0 = x − σ ε̂ (for progress and previews)."""


@dataclass(frozen=True)
class DDIMSchedule:
    """The DDIM timesteps τ_1 < … < τ_N and their noise levels σ_0 < σ_1 < … < σ_N (σ_0 before the first step)."""

    timesteps: torch.Tensor
    sigmas: torch.Tensor

    @property
    def steps(self) -> int:
        return len(self.timesteps)

    def sampling_sigmas(self) -> torch.Tensor:
        """σ_N, …, σ_0: the noise levels in sampling order."""
        return self.sigmas.flip(0)


def ddim_timesteps(steps: int, train_steps: int = 1000, steps_offset: int = 1) -> torch.Tensor:
    """τ_1..τ_N ascending, spaced like diffusers' DDIM schedulers with ``timestep_spacing="leading"``."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    timesteps = torch.arange(steps, dtype=torch.long) * (train_steps // steps) + steps_offset
    if steps > train_steps or int(timesteps[-1]) >= train_steps:
        raise ValueError(
            f"{steps} DDIM steps with steps_offset {steps_offset} do not fit the model's {train_steps} timesteps"
        )
    return timesteps


def ddim_schedule(
    train_sigmas: torch.Tensor, steps: int, steps_offset: int = 1, set_alpha_to_one: bool = False
) -> DDIMSchedule:
    """The DDIM schedule of ``steps`` steps on a model whose σ table (one σ per training timestep) is given."""
    timesteps = ddim_timesteps(steps, len(train_sigmas), steps_offset)
    train_sigmas = train_sigmas.detach().float().cpu()
    first = torch.zeros(1) if set_alpha_to_one else train_sigmas[:1]
    return DDIMSchedule(timesteps=timesteps, sigmas=torch.cat([first, train_sigmas[timesteps]]))


def to_sigma_space(z: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """x = z · √(1 + σ²): a variance-preserving sample at noise level σ in ComfyUI's σ-space."""
    return z * (1 + sigma**2).sqrt()


def to_variance_preserving(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """z = x / √(1 + σ²): the sample the UNet sees (and diffusers keeps) for a σ-space sample at noise level σ."""
    return x / (1 + sigma**2).sqrt()


def ddim_step(x: torch.Tensor, eps: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
    """x' = x + (σ' − σ) ε̂: the deterministic DDIM step between any two noise levels (either direction)."""
    return x + (sigma_next - sigma) * eps


def inversion_step(
    predict: EpsilonPredictor, x: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One inversion step σ → σ' > σ with ε̂ taken at σ' on the current sample z; returns ``(x', x̂_0)``."""
    eps = predict(to_sigma_space(to_variance_preserving(x, sigma), sigma_next), sigma_next)
    return ddim_step(x, eps, sigma, sigma_next), x - sigma * eps


@torch.no_grad()
def ddim_invert(
    predict: EpsilonPredictor, z0: torch.Tensor, schedule: DDIMSchedule, on_step: StepCallback | None = None
) -> torch.Tensor:
    """Invert the clean latent ``z0`` along ``schedule``; returns the σ-space trajectory x_0, …, x_N stacked.

    ``z0`` is the model-space latent (ComfyUI's latent after ``process_latent_in``); x_N is the inverted noise.
    """
    sigmas = schedule.sigmas.to(z0.device)
    x = to_sigma_space(z0.float(), sigmas[0])
    return inversion_trajectory(
        lambda x, sigma, sigma_next: inversion_step(predict, x, sigma, sigma_next), x, sigmas, on_step
    )


def inversion_trajectory(
    step: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    x: torch.Tensor,
    sigmas: torch.Tensor,
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """x_0 = ``x``, …, x_N stacked, step k taking σ_{k−1} → σ_k with ``step(x, σ, σ') -> (x', x̂_0)`` (DDIM's or the
    flow ODE's); ``on_step(k − 1, x̂_0)`` after each."""
    trajectory = [x]
    for k in range(1, len(sigmas)):
        x, denoised = step(x, sigmas[k - 1], sigmas[k])
        trajectory.append(x)
        if on_step is not None:
            on_step(k - 1, denoised)
    return torch.stack(trajectory)
