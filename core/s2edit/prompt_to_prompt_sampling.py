"""The prompt-to-prompt replay: guided DDIM sampling of the batch [source, target] from the inverted noise.

Both images start from x_N (the inversion's noise) and step with the null-text embedding ∅_i of the inversion
(``core.s2edit.null_text_inversion``) and the same guidance w:

    ε̃_b = ε_θ(x_b, σ_k; ∅_i) + w (ε_θ(x_b, σ_k; C_b) − ε_θ(x_b, σ_k; ∅_i)),     x_b ← x_b + (σ_{k−1} − σ_k) ε̃_b

(k = N − i), where C_b is the source or the target prompt and the attention edits act inside the UNet call. After
the step an optional ``after_step(i, x)`` may change the batch (local blending, ``core.s2edit.local_blend``). The source
row is exactly the reconstruction that ``guided_ddim_sample`` gives.
"""

from collections.abc import Callable, Sequence

import torch

from .ddim_inversion import DDIMSchedule, StepCallback
from .null_text_inversion import GuidedPredictor, guided_ddim_sample

AfterStep = Callable[[int, torch.Tensor], torch.Tensor]


def single_step(schedule: DDIMSchedule, step: int) -> DDIMSchedule:
    """The one-step schedule of sampling step i: from σ_k to σ_{k−1}, k = N − i."""
    k = schedule.steps - step
    return DDIMSchedule(schedule.timesteps[k - 1 : k], schedule.sigmas[k - 1 : k + 1])


def prompt_to_prompt_sample(
    predictor: GuidedPredictor,
    x: torch.Tensor,
    schedule: DDIMSchedule,
    *,
    guidance: float,
    nulls: Sequence[torch.Tensor | None],
    after_step: AfterStep | None = None,
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """Sample the batch ``x`` (σ-space, at σ_N) down to σ_0 with ``nulls[i]`` at step i; returns the batch.

    Each step is ``guided_ddim_sample`` over that step alone, followed by ``after_step``.
    """
    if len(nulls) != schedule.steps:
        raise ValueError(f"{len(nulls)} null embeddings for a schedule of {schedule.steps} steps")
    for i, null in enumerate(nulls):
        report = None if on_step is None else (lambda _, denoised, i=i: on_step(i, denoised))
        x = guided_ddim_sample(predictor, x, single_step(schedule, i), guidance=guidance, nulls=[null], on_step=report)
        if after_step is not None:
            x = after_step(i, x)
    return x
