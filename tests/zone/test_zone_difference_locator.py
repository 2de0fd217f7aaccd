"""The rough edit mask from an image difference: metrics, blur, thresholds, latents, errors."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from precise_edit.core.masks.binary_morphology import dilate, erode
from precise_edit.core.zone.difference_locator import difference_mask, pixel_difference


@pytest.fixture
def edit() -> dict[str, torch.Tensor]:
    """A 64 × 80 image, re-encoded everywhere (±0.02 noise) and repainted in rows 20–39, columns 30–59."""
    generator = torch.Generator().manual_seed(3)
    original = torch.rand(1, 3, 64, 80, generator=generator) * 0.5 + 0.25
    edited = original + (torch.rand(original.shape, generator=generator) - 0.5) * 0.04
    edited[:, 0, 20:40, 30:60] += 0.4
    region = torch.zeros(1, 64, 80, dtype=torch.bool)
    region[:, 20:40, 30:60] = True
    return {"original": original, "edited": edited, "region": region}


def test_metrics_are_max_mean_and_rms_over_channels():
    original = torch.zeros(1, 3, 1, 1)
    edited = torch.tensor([0.3, -0.4, 0.0]).view(1, 3, 1, 1)
    assert pixel_difference(original, edited, "max").item() == pytest.approx(0.4)
    assert pixel_difference(original, edited, "mean").item() == pytest.approx(0.7 / 3)
    assert pixel_difference(original, edited, "rms").item() == pytest.approx((0.25 / 3) ** 0.5)


def within_a_pixel(found: torch.Tensor, region: torch.Tensor) -> bool:
    """``found`` holds the region shrunk by one pixel and lies inside the region grown by one (blurred corners)."""
    return bool((erode(region, 1) <= found).all() and (found <= dilate(region, 1)).all())


def test_the_edited_region_is_found_and_the_re_encoding_noise_is_not(edit):
    for metric in ("max", "mean", "rms"):
        found = difference_mask(edit["original"], edit["edited"], metric=metric, blur_sigma=1.0, threshold=0.5)
        assert within_a_pixel(found, edit["region"]), metric
    absolute = difference_mask(edit["original"], edit["edited"], blur_sigma=1.0, threshold=0.2, relative=False)
    assert within_a_pixel(absolute, edit["region"])
    unblurred = difference_mask(edit["original"], edit["edited"], blur_sigma=0.0, threshold=0.015, relative=False)
    assert unblurred.sum() > 4 * edit["region"].sum(), "without blur and with a low threshold the noise shows"


def test_latents_give_a_mask_at_the_requested_image_size(edit):
    small = torch.nn.functional.avg_pool2d(edit["original"], 8), torch.nn.functional.avg_pool2d(edit["edited"], 8)
    found = difference_mask(*small, blur_sigma=0.0, threshold=0.5, size=(64, 80))
    assert found.shape == (1, 64, 80)
    assert found[:, 24:36, 34:56].all() and not found[:, :12].any() and not found[:, :, :20].any()


def test_identical_images_give_an_empty_mask_and_batches_broadcast(edit):
    assert not difference_mask(edit["original"], edit["original"]).any()
    both = difference_mask(
        edit["original"], torch.cat([edit["edited"], edit["original"]]), blur_sigma=1.0, threshold=0.5
    )
    assert within_a_pixel(both[:1], edit["region"]) and not both[1].any()


@pytest.mark.parametrize(
    ("original", "edited", "options", "message"),
    [
        (torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9), {}, r"same C, H, W; got \(1, 3, 8, 8\) and \(1, 3, 8, 9\)"),
        (torch.zeros(2, 3, 8, 8), torch.zeros(3, 3, 8, 8), {}, "original has 2 images and edited has 3"),
        (torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), {"metric": "l2"}, "metric must be one of"),
        (torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), {"blur_sigma": -1.0}, "must be ≥ 0"),
    ],
)
def test_bad_inputs_name_what_is_wrong(original, edited, options, message):
    with pytest.raises(ValueError, match=message):
        difference_mask(original, edited, **options)


@settings(max_examples=30, deadline=None)
@given(
    height=st.integers(1, 40),
    width=st.integers(1, 40),
    sigma=st.floats(0.0, 4.0),
    threshold=st.floats(0.01, 0.99),
    seed=st.integers(0, 2**31 - 1),
)
def test_unchanged_pixels_far_from_any_change_are_never_in_the_mask(height, width, sigma, threshold, seed):
    generator = torch.Generator().manual_seed(seed)
    original = torch.rand(1, 3, height, width, generator=generator)
    edited = original.clone()
    edited[..., : height // 2, : width // 2] = torch.rand(1, 3, height // 2, width // 2, generator=generator)
    mask = difference_mask(original, edited, blur_sigma=sigma, threshold=threshold)
    reach = 2 * int(3 * sigma) + 2
    assert not mask[:, height // 2 + reach :, :].any() and not mask[:, :, width // 2 + reach :].any()
    assert mask.sum() <= (height // 2 + reach) * (width // 2 + reach)
