"""Unit tests of the pure-torch DDIM inversion and null-text optimisation (no ComfyUI): schedule and step formulas
against diffusers' DDIM schedulers, and the optimisation's early stopping and evaluation counts on a toy predictor."""

import pytest
import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler
from diffusers_unet import SD_DDIM_SCHEDULER

from precise_edit.core.s2edit.ddim_inversion import (
    ddim_invert,
    ddim_schedule,
    ddim_step,
    ddim_timesteps,
    inversion_step,
    to_sigma_space,
    to_variance_preserving,
)
from precise_edit.core.s2edit.null_text_inversion import (
    NullTextSettings,
    early_stop_threshold,
    guided_ddim_sample,
    learning_rate,
    optimise_null_text,
)


def diffusers_sigmas() -> torch.Tensor:
    alphas = DDIMScheduler(**SD_DDIM_SCHEDULER).alphas_cumprod
    return ((1 - alphas) / alphas).sqrt()


@pytest.mark.parametrize("steps", [1, 7, 10, 50, 999])
def test_timesteps_are_diffusers_leading_spacing_in_both_directions(steps):
    inverse, forward = DDIMInverseScheduler(**SD_DDIM_SCHEDULER), DDIMScheduler(**SD_DDIM_SCHEDULER)
    inverse.set_timesteps(steps)
    forward.set_timesteps(steps)
    ours = ddim_timesteps(steps)
    assert ours.tolist() == inverse.timesteps.tolist() == forward.timesteps.flip(0).tolist()


def test_schedule_sigmas_are_the_diffusers_alphas_and_start_at_the_final_alpha():
    table = diffusers_sigmas()
    schedule = ddim_schedule(table, 50)
    alphas = DDIMScheduler(**SD_DDIM_SCHEDULER).alphas_cumprod
    expected = ((1 - alphas[schedule.timesteps]) / alphas[schedule.timesteps]).sqrt()
    torch.testing.assert_close(schedule.sigmas[1:], expected)
    assert schedule.sigmas[0] == table[0] and schedule.timesteps[0] == 1 and schedule.timesteps[-1] == 981
    assert ddim_schedule(table, 50, set_alpha_to_one=True).sigmas[0] == 0
    assert schedule.sampling_sigmas()[0] == schedule.sigmas[-1]


@pytest.mark.parametrize("steps", [0, 1001])
def test_impossible_step_counts_are_refused(steps):
    with pytest.raises(ValueError, match="steps"):
        ddim_timesteps(steps)


def test_inversion_and_sampling_steps_are_the_diffusers_steps_in_sigma_space():
    g = torch.Generator().manual_seed(0)
    steps = 10
    inverse, forward = DDIMInverseScheduler(**SD_DDIM_SCHEDULER), DDIMScheduler(**SD_DDIM_SCHEDULER)
    inverse.set_timesteps(steps)
    forward.set_timesteps(steps)
    schedule = ddim_schedule(diffusers_sigmas(), steps)
    sigmas = schedule.sigmas
    for k in (1, 5, steps):
        z, eps = torch.randn(1, 4, 3, 5, generator=g), torch.randn(1, 4, 3, 5, generator=g)
        theirs = inverse.step(eps, int(schedule.timesteps[k - 1]), z).prev_sample
        ours, _ = inversion_step(lambda x, sigma, e=eps: e, to_sigma_space(z, sigmas[k - 1]), sigmas[k - 1], sigmas[k])
        torch.testing.assert_close(to_variance_preserving(ours, sigmas[k]), theirs, atol=1e-6, rtol=1e-5)
        theirs = forward.step(eps, int(schedule.timesteps[k - 1]), z).prev_sample
        ours = ddim_step(to_sigma_space(z, sigmas[k]), eps, sigmas[k], sigmas[k - 1])
        torch.testing.assert_close(to_variance_preserving(ours, sigmas[k - 1]), theirs, atol=1e-6, rtol=1e-5)


def test_inversion_evaluates_the_noise_at_the_destination_timestep_on_the_current_sample():
    schedule = ddim_schedule(diffusers_sigmas(), 4)
    z0 = torch.randn(1, 4, 2, 3, generator=torch.Generator().manual_seed(1))
    seen = []

    def predict(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        seen.append((to_variance_preserving(x, sigma), float(sigma)))
        return torch.zeros_like(x)

    trajectory = ddim_invert(predict, z0, schedule)
    assert [sigma for _, sigma in seen] == schedule.sigmas[1:].tolist()
    torch.testing.assert_close(seen[0][0], z0)
    for k, (z_seen, _) in enumerate(seen):
        torch.testing.assert_close(z_seen, to_variance_preserving(trajectory[k], schedule.sigmas[k]))


class ToyPredictor:
    """ε_c = tanh(z)/2 + c and ε_∅ = tanh(z)/2 + P·mean(∅): the null embedding moves ε_∅ linearly, and the default
    null's ε_∅ is 0.2 (per element) away from ε_c, a guidance gap of the usual size. Counts its evaluations."""

    def __init__(self, shape: tuple[int, ...], width: int = 64, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.shape = shape
        self.projection = torch.randn(width, torch.Size(shape).numel(), generator=g) / width**0.5
        self.default_null = torch.randn(1, 5, width, generator=g)
        self.cond = self._null(self.default_null) + 0.2 * torch.randn(shape, generator=g)
        self.evaluations = 0

    def _null(self, null: torch.Tensor) -> torch.Tensor:
        return (null.mean(1) @ self.projection).reshape(self.shape)

    def _base(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return torch.tanh(to_variance_preserving(x, sigma)) / 2

    def conditional(self, x, sigma):
        self.evaluations += x.shape[0]
        return self._base(x, sigma) + self.cond

    def unconditional(self, x, sigma, null):
        self.evaluations += x.shape[0]
        return self._base(x, sigma) + self._null(self.default_null if null is None else null)

    def both(self, x, sigma, null):
        return self.conditional(x, sigma), self.unconditional(x, sigma, null)


@pytest.fixture(scope="module")
def toy():
    predictor = ToyPredictor((1, 4, 3, 4))
    schedule = ddim_schedule(diffusers_sigmas(), 8)
    z0 = torch.randn(1, 4, 3, 4, generator=torch.Generator().manual_seed(2))
    return predictor, schedule, ddim_invert(predictor.conditional, z0, schedule)


def run(toy, **settings):
    predictor, schedule, trajectory = toy
    predictor.evaluations = 0
    null = predictor.default_null.clone()
    result = optimise_null_text(predictor, trajectory, schedule, null=null, settings=NullTextSettings(**settings))
    assert torch.equal(null, predictor.default_null), "the starting embedding was modified"
    assert result.unet_evaluations == predictor.evaluations
    return result


def reconstruction_error(toy, nulls, guidance: float = 7.5) -> float:
    predictor, schedule, trajectory = toy
    x0 = guided_ddim_sample(predictor, trajectory[-1], schedule, guidance=guidance, nulls=nulls)
    return float((x0 - trajectory[0]).square().mean())


def test_optimised_nulls_retrace_the_pivot_and_the_replay_matches_the_optimisation(toy):
    _, schedule, _ = toy
    result = run(toy, inner_steps=30, epsilon=1e-7)
    plain = reconstruction_error(toy, [None] * schedule.steps)
    optimised = reconstruction_error(toy, list(result.null_embeddings))
    print(f"toy reconstruction MSE: plain DDIM {plain:.3g}, null-text {optimised:.3g}")
    assert optimised < plain / 100
    predictor, _, trajectory = toy
    replay = guided_ddim_sample(predictor, trajectory[-1], schedule, guidance=7.5, nulls=list(result.null_embeddings))
    torch.testing.assert_close(replay, result.reconstruction)


def test_early_stopping_cuts_evaluations_and_stops_only_below_the_threshold(toy):
    _, schedule, _ = toy
    steps, inner = schedule.steps, 6
    worst = run(toy, inner_steps=inner, epsilon=-1.0)
    assert worst.unet_evaluations == steps * (inner + 2) and worst.backward_passes == steps * inner
    assert not any(worst.early_stopped) and set(worst.iterations) == {inner}
    first_try = run(toy, inner_steps=inner, epsilon=1e3)
    assert first_try.unet_evaluations == 2 * steps and first_try.backward_passes == 0
    epsilon = sorted(worst.losses)[steps // 2]
    moderate = run(toy, inner_steps=inner, epsilon=epsilon)
    print(
        f"toy evaluations: worst case {worst.unet_evaluations}, early stopping {moderate.unet_evaluations} "
        f"(iterations per step {moderate.iterations})"
    )
    assert any(moderate.early_stopped) and moderate.unet_evaluations < worst.unet_evaluations
    for i, (stopped, loss, runs) in enumerate(
        zip(moderate.early_stopped, moderate.losses, moderate.iterations, strict=True)
    ):
        if stopped:
            assert loss < early_stop_threshold(i, steps, epsilon)
        else:
            assert runs == inner
    expected = sum(
        1 + runs + (not stopped) for runs, stopped in zip(moderate.iterations, moderate.early_stopped, strict=True)
    )
    assert moderate.unet_evaluations == expected


def test_schedules_are_the_notebooks_at_fifty_steps():
    for i in (0, 1, 25, 49):
        assert learning_rate(i, 50) == pytest.approx(1e-2 * (1 - i / 100))
        assert early_stop_threshold(i, 50, 1e-5) == pytest.approx(1e-5 + i * 2e-5)


def test_replay_refuses_a_wrong_number_of_null_embeddings(toy):
    predictor, schedule, trajectory = toy
    with pytest.raises(ValueError, match="3 null embeddings for a schedule of 8 steps"):
        guided_ddim_sample(predictor, trajectory[-1], schedule, guidance=7.5, nulls=[None] * 3)
