"""Unit tests of the pure-torch rectified-flow inversion (no ComfyUI): the schedule, the exact round trip where the
maths promises one (a velocity that does not depend on x), first-order convergence to the exact flow map of Gaussian
data (a velocity linear in x), and the replay of ``guided_ddim_sample`` as the flow's Euler sampler."""

import pytest
import torch

from precise_edit.core.s2edit.flow_inversion import flow_invert, flow_schedule
from precise_edit.core.s2edit.null_text_inversion import guided_ddim_sample

SHAPE = (1, 4, 6, 5)


def shifted_table(shift: float = 3.0, count: int = 1000) -> torch.Tensor:
    """SD3's σ table: σ(t) = s·t / (1 + (s − 1)·t) at t = 1/T … T/T."""
    t = torch.arange(1, count + 1) / count
    return shift * t / (1 + (shift - 1) * t)


class VelocityField:
    """A GuidedPredictor whose conditional velocity is ``field(x, σ)`` (no guidance: the null repeats it)."""

    def __init__(self, field) -> None:
        self.field = field
        self.sigmas: list[float] = []

    def conditional(self, x, sigma):
        self.sigmas.append(float(sigma))
        return self.field(x, sigma)

    def unconditional(self, x, sigma, null):
        return self.field(x, sigma)

    def both(self, x, sigma, null):
        return self.conditional(x, sigma), self.unconditional(x, sigma, null)


def round_trip(field: VelocityField, x0: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverted noise and the latent sampled back from it with the same schedule."""
    schedule = flow_schedule(shifted_table(), steps)
    noise = flow_invert(field.conditional, x0, schedule)[-1]
    return noise, guided_ddim_sample(field, noise, schedule, guidance=1.0, nulls=[None] * steps)


def sample(seed: int) -> torch.Tensor:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("steps", [1, 3, 7, 28, 1000])
def test_schedule_is_the_simple_schedulers_every_nth_table_entry_from_the_top(steps):
    table = shifted_table()
    schedule = flow_schedule(table, steps)
    spacing = len(table) / steps
    expected = [float(table[-(1 + int(i * spacing))]) for i in range(steps)] + [0.0]
    assert schedule.sampling_sigmas().tolist() == pytest.approx(expected, abs=0)
    assert schedule.sigmas[0] == 0 and schedule.sigmas[-1] == 1 and schedule.steps == steps
    assert (schedule.sigmas[1:] == table[schedule.timesteps]).all()
    assert (schedule.sigmas.diff() > 0).all()


@pytest.mark.parametrize("steps", [0, 1001])
def test_impossible_step_counts_are_refused(steps):
    with pytest.raises(ValueError, match="steps"):
        flow_schedule(shifted_table(), steps)


def test_the_straight_path_is_inverted_exactly_and_every_step_sees_the_clean_latent():
    x0, eps = sample(0), sample(1)
    field = VelocityField(lambda x, sigma: eps - x0)
    schedule = flow_schedule(shifted_table(), 5)
    seen = []
    trajectory = flow_invert(field.conditional, x0, schedule, lambda i, denoised: seen.append(denoised))
    for sigma, x in zip(schedule.sigmas, trajectory, strict=True):
        torch.testing.assert_close(x, (1 - sigma) * x0 + sigma * eps)
    for denoised in seen:
        torch.testing.assert_close(denoised, x0)
    assert field.sigmas == schedule.sigmas[1:].tolist(), "v̂ must be read at each step's destination σ"


@pytest.mark.parametrize("steps", [1, 4, 13])
def test_a_velocity_independent_of_x_round_trips_exactly_at_any_step_count(steps):
    x0, direction = sample(2), sample(3)
    field = VelocityField(lambda x, sigma: torch.cos(7 * sigma) * direction - x0)
    noise, back = round_trip(field, x0, steps)
    torch.testing.assert_close(back, x0, atol=1e-5, rtol=0)
    assert (noise - x0).abs().max() > 0.1


def gaussian_velocity(mean: float, std: float):
    """The exact rectified-flow velocity of data x₀ ~ N(mean, std²) per coordinate: v = (x − E[x₀ | x_σ]) / σ,
    linear in x; its ODE carries x₀ to the noise (x₀ − mean) / std."""

    def velocity(x, sigma):
        variance = (1 - sigma) ** 2 * std**2 + sigma**2
        posterior_mean = mean + (1 - sigma) * std**2 / variance * (x - (1 - sigma) * mean)
        return (x - posterior_mean) / sigma

    return velocity


def test_a_velocity_linear_in_x_converges_to_the_exact_flow_map_at_first_order():
    mean, std = 0.7, 0.4
    x0 = mean + std * sample(4)
    exact_noise = (x0 - mean) / std
    errors = {}
    for steps in (10, 20, 40, 80):
        noise, back = round_trip(VelocityField(gaussian_velocity(mean, std)), x0, steps)
        errors[steps] = float((noise - exact_noise).abs().max()), float((back - x0).abs().max())
    print("Gaussian data, max |error| (inverted noise vs exact map, round trip):", errors)
    for coarse, fine in ((10, 20), (20, 40), (40, 80)):
        for before, after in zip(errors[coarse], errors[fine], strict=True):
            assert 0.35 < after / before < 0.65, "not first order"
    assert errors[80][1] < 0.03 * float(x0.abs().max())


def test_a_schedule_that_does_not_start_at_the_clean_latent_is_refused():
    schedule = flow_schedule(shifted_table(), 4)
    shifted = type(schedule)(timesteps=schedule.timesteps, sigmas=schedule.sigmas + 0.01)
    with pytest.raises(ValueError, match="σ = 0"):
        flow_invert(lambda x, sigma: x, sample(5), shifted)
