"""Rectified-flow inversion: the deterministic flow ODE of a velocity model run from the image up to noise.

Flow models (ComfyUI's ``CONST`` sampling: Flux, SD3, Qwen-Image, …) interpolate linearly between the clean latent
x₀ and Gaussian noise ε,

    x_σ = (1 − σ) x₀ + σ ε,        σ ∈ [0, 1],

and the network predicts the velocity v = ε − x₀ (ComfyUI: denoised = x − σ v; the model input is x itself). Sampling
integrates the ODE

    dx/dσ = v(x, σ)

from σ = 1 down to 0; its Euler step between two noise levels is

    x' = x + (σ' − σ) v̂,

the same line as the DDIM step of ``core.s2edit.ddim_inversion`` with ε̂ replaced by v̂ (DDIM is Euler's method in σ-space
for both parameterisations), so ComfyUI's ``euler`` sampler, ``ddim_step`` and the guided replay
``null_text_inversion.guided_ddim_sample`` all take it unchanged. Inversion runs the same ODE the other way, from
x₀ at σ₀ = 0 up the sampler's schedule σ₀ < σ₁ < … < σ_N = 1, and, like DDIM inversion, takes each step's velocity at
its *destination* noise level on the current sample:

    x_k = x_{k−1} + (σ_k − σ_{k−1}) · v̂(x_{k−1}, σ_k).

Sampling back evaluates v̂(x_k, σ_k) for the step σ_k → σ_{k−1}: the round trip differs only in where v̂ is read
(x_{k−1} instead of x_k), so it is exact when v̂ does not depend on x (a straight path x₀ → ε, any step count) and
its error shrinks like 1/N for a velocity that does (first order; the Gaussian-data velocity, linear in x, shows it).
Reading v̂ at σ_k also never asks the model for σ₀ = 0, where ComfyUI's velocity (x − denoised)/σ is undefined.

With classifier-free guidance the inversion follows the guided velocity the replay will use,

    ṽ = v_∅ + w (v_c − v_∅)          (w = 1: v_c alone),

so the round trip stays the plain ODE's.

Schedule: ComfyUI's ``simple`` scheduler (the default of Flux, SD3 and Qwen-Image workflows) takes every (T/N)-th
entry of the model's σ table σ(1/T), …, σ(T/T) from the top: sampling step i (i = 0..N−1) is at table index
T − 1 − ⌊i · T/N⌋, followed by σ = 0. ``flow_schedule`` returns those levels ascending in a ``DDIMSchedule`` whose
timesteps are the table indices and whose σ₀ is 0, so the replay and the checks of the DDIM path apply as they are.
"""

import torch

from .ddim_inversion import DDIMSchedule, EpsilonPredictor, StepCallback, ddim_step, inversion_trajectory

VelocityPredictor = EpsilonPredictor
"""v̂(x, σ) for a sample ``x`` at noise level ``σ`` (a 0-dim tensor): the same calling convention as ε̂."""


def flow_schedule(train_sigmas: torch.Tensor, steps: int) -> DDIMSchedule:
    """The ``simple`` scheduler's ``steps`` noise levels on a flow model's σ table, ascending from σ₀ = 0."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    table = train_sigmas.detach().float().cpu()
    count = len(table)
    if steps > count:
        raise ValueError(f"{steps} steps do not fit the model's σ table of {count} entries")
    spacing = count / steps
    indices = torch.tensor([count - 1 - int(i * spacing) for i in reversed(range(steps))], dtype=torch.long)
    return DDIMSchedule(timesteps=indices, sigmas=torch.cat([torch.zeros(1), table[indices]]))


def flow_inversion_step(
    predict: VelocityPredictor, x: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step σ → σ' > σ with v̂ read at σ' on the current sample; returns ``(x', x̂₀ = x − σ v̂)``."""
    velocity = predict(x, sigma_next)
    return ddim_step(x, velocity, sigma, sigma_next), x - sigma * velocity


@torch.no_grad()
def flow_invert(
    predict: VelocityPredictor, x0: torch.Tensor, schedule: DDIMSchedule, on_step: StepCallback | None = None
) -> torch.Tensor:
    """Integrate dx/dσ = v̂ from the clean latent ``x0`` (model space, σ₀ = 0) up ``schedule``; returns x_0, …, x_N
    stacked (x_N: the inverted noise)."""
    sigmas = schedule.sigmas.to(x0.device)
    if float(sigmas[0]) != 0.0:
        raise ValueError(f"a flow inversion starts from the clean latent at σ = 0, the schedule starts at {sigmas[0]}")
    return inversion_trajectory(
        lambda x, sigma, sigma_next: flow_inversion_step(predict, x, sigma, sigma_next), x0.float(), sigmas, on_step
    )
