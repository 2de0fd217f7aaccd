"""ZONE's FFT edge smoother and compositing: low-pass geometry, bit-exact preservation, smoothing, released parity."""

import importlib.util
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from precise_edit.core.masks.binary_morphology import close, dilate, erode
from precise_edit.core.masks.connected_components import fill_holes
from precise_edit.core.zone.fft_edge_smoother import (
    SmootherSettings,
    gray,
    low_pass,
    low_pass_mask,
    smooth_and_composite,
)

REPO = Path(__file__).resolve().parents[2]


def centred_circle(height: int, width: int, radius: float, centre: tuple[int, int]) -> torch.Tensor:
    """An ideal low-pass drawn on the fftshift-ed spectrum, as the released code does, around (row, column)."""
    rows, columns = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return (rows - centre[0]) ** 2 + (columns - centre[1]) ** 2 <= radius**2


def rfft_half(shifted: torch.Tensor) -> torch.Tensor:
    """The part of an fftshift-ed spectrum mask that rfft2 keeps, in rfft2's order."""
    return torch.fft.ifftshift(shifted)[:, : shifted.shape[1] // 2 + 1]


@pytest.mark.parametrize(("height", "width"), [(48, 160), (160, 48), (33, 70), (64, 64)])
def test_low_pass_is_centred_on_the_zero_frequency_for_any_aspect_ratio(height, width):
    radius = 12.0
    expected = rfft_half(centred_circle(height, width, radius, (height // 2, width // 2)))
    assert torch.equal(low_pass_mask(height, width, radius), expected)

    constant = torch.full((1, height, width), 0.7)
    torch.testing.assert_close(low_pass(constant, radius), constant, rtol=0, atol=1e-6)
    rows, columns = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    inside = torch.cos(2 * math.pi * (5 * rows / height + 6 * columns / width))  # |(5, 6)| < 12
    outside = torch.cos(2 * math.pi * 13 * columns / width)  # |(0, 13)| > 12
    torch.testing.assert_close(low_pass(inside + outside, radius), inside, rtol=0, atol=1e-4)


def test_the_released_transposed_centre_would_fail_the_same_check():
    """cv2.circle(mask, (rows // 2, cols // 2), …) takes (x, y): on a 48 × 160 spectrum the circle misses the zero
    frequency, so a constant image would come out black. Our filter is the correctly centred one."""
    height, width, radius = 48, 160, 12.0
    released = centred_circle(height, width, radius, (width // 2, height // 2))
    assert not released[height // 2, width // 2]
    assert not torch.equal(rfft_half(released), low_pass_mask(height, width, radius))


def test_settings_scale_with_the_longest_side():
    assert SmootherSettings().scaled(512, 384) == SmootherSettings()
    assert SmootherSettings().scaled(768, 1024) == SmootherSettings(
        dilation_radius=8, low_pass_radius=400.0, threshold=30.0, closing_radius=20, alpha=0.6
    )
    assert SmootherSettings().scaled(64, 48) == SmootherSettings(
        dilation_radius=1, low_pass_radius=25.0, threshold=30.0, closing_radius=1, alpha=0.6
    )


def disk(height: int, width: int, centre: tuple[float, float], radius: torch.Tensor | float) -> torch.Tensor:
    rows, columns = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    dy, dx = rows - centre[0], columns - centre[1]
    if isinstance(radius, torch.Tensor):
        radius = radius[
            torch.atan2(dy.float(), dx.float()).add(math.pi).mul(len(radius) / (2 * math.pi)).long() % len(radius)
        ]
    return dy**2 + dx**2 <= radius**2


def textured(height: int, width: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(1, 3, height // 4 + 1, width // 4 + 1, generator=generator)
    smooth = torch.nn.functional.interpolate(noise, size=(height, width), mode="bilinear", align_corners=False)
    return (0.3 + 0.4 * smooth).permute(0, 2, 3, 1).contiguous()


def roughness(mask: torch.Tensor) -> float:
    """Boundary length (4-neighbour changes) over the square root of the area: 2√π ≈ 3.5 for an ideal disk."""
    padded = torch.nn.functional.pad(mask.float(), (1, 1, 1, 1))
    edges = (padded[1:] != padded[:-1]).sum() + (padded[:, 1:] != padded[:, :-1]).sum()
    return float(edges) / math.sqrt(float(mask.sum()))


@pytest.fixture(scope="module")
def jagged_edit() -> dict:
    """A 96 × 128 image whose disk (radius 24) was recoloured, and an M_f whose border has 16 teeth ±4 px deep."""
    height, width, centre = 96, 128, (46.0, 70.0)
    original = textured(height, width)
    target = disk(height, width, centre, 24.0)
    edited = original.clone()
    edited[0][target] = torch.tensor([0.1, 0.2, 0.95])
    teeth = 24.0 + 4.0 * torch.sign(torch.sin(torch.linspace(0, 16 * math.pi, 361)[:-1]))
    fine = disk(height, width, centre, teeth)
    return {"original": original, "edited": edited, "object": target, "fine": fine}


def test_the_smoother_removes_jagged_edges_and_keeps_the_object(jagged_edit):
    original, edited, target, fine = (jagged_edit[k] for k in ("original", "edited", "object", "fine"))
    naive = torch.where(fine[None, ..., None], edited, original)
    result = smooth_and_composite(
        original,
        edited,
        fine[None],
        SmootherSettings(dilation_radius=4, low_pass_radius=50.0, threshold=30.0, closing_radius=5, alpha=0.6),
    )
    changed_naive = (naive != original).any(-1)[0]
    changed = (result.composite != original).any(-1)[0]

    assert roughness(changed_naive) > 1.3 * roughness(target)
    assert roughness(changed) < 1.1 * roughness(target)
    assert changed_naive.sum() < 0.9 * target.sum()
    assert torch.equal(changed, target), "every object pixel and nothing else changes"
    inner = erode(target[None], 1)[0] & fine
    assert torch.equal(result.composite[0][inner], edited[0][inner]), "the object is pasted, not blended"
    band = target & ~fine
    torch.testing.assert_close(result.composite[0][band], 0.6 * edited[0][band] + 0.4 * original[0][band])


def reference_smoother(original, edited, fine, settings_: SmootherSettings):
    """The steps on the whole image, without the bounding boxes the implementation confines them to."""
    support = dilate(fine, settings_.dilation_radius)
    difference = gray(edited - original) * support
    changed = low_pass(difference, settings_.low_pass_radius).abs() > settings_.threshold
    edge = fill_holes(close(changed, settings_.closing_radius))
    core, band = edge & fine, edge ^ fine
    blended = torch.where(band[..., None], torch.lerp(original, edited, settings_.alpha), original)
    return edge | fine, torch.where(core[..., None], edited, blended)


@st.composite
def edits(draw) -> tuple:
    height, width = draw(st.integers(8, 56)), draw(st.integers(8, 56))
    seed = draw(st.integers(0, 2**31 - 1))
    generator = torch.Generator().manual_seed(seed)
    original = torch.rand(1, height, width, 3, generator=generator)
    blobs = torch.zeros(2, height, width, dtype=torch.bool)
    for index in range(draw(st.integers(0, 3))):
        centre = (draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1)))
        blobs[index % 2] |= disk(height, width, centre, float(draw(st.integers(1, 12))))
    edited = torch.where(blobs[0, None, ..., None], torch.rand(1, height, width, 3, generator=generator), original)
    settings_ = SmootherSettings(
        dilation_radius=draw(st.integers(0, 5)),
        low_pass_radius=float(draw(st.integers(1, 40))),
        threshold=float(draw(st.integers(1, 60))),
        closing_radius=draw(st.integers(0, 6)),
        alpha=draw(st.floats(0.0, 1.0)),
    )
    return original, edited, blobs[1:] | blobs[:1], settings_


@settings(max_examples=30, deadline=None)
@given(edit=edits())
def test_pixels_outside_the_final_mask_are_bit_identical_and_boxes_change_nothing(edit):
    original, edited, fine, settings_ = edit
    result = smooth_and_composite(original, edited, fine, settings_)
    outside = ~result.final_mask[..., None].expand_as(original)
    assert torch.equal(result.composite[outside], original[outside])
    assert (result.final_mask | ~fine).all()
    final, composite = reference_smoother(original, edited, fine, settings_)
    assert torch.equal(result.final_mask, final)
    assert torch.equal(result.composite, composite)


def test_batches_broadcast_and_match_single_runs(jagged_edit):
    original, edited, fine = jagged_edit["original"], jagged_edit["edited"], jagged_edit["fine"]
    other = torch.flip(fine, (0,))
    settings_ = SmootherSettings(dilation_radius=4, low_pass_radius=50.0, threshold=30.0, closing_radius=5, alpha=0.6)
    batch = smooth_and_composite(original, torch.cat([edited, original]), torch.stack([fine, other]), settings_)
    first = smooth_and_composite(original, edited, fine[None], settings_)
    second = smooth_and_composite(original, original, other[None], settings_)
    assert torch.equal(batch.final_mask, torch.cat([first.final_mask, second.final_mask]))
    assert torch.equal(batch.composite, torch.cat([first.composite, second.composite]))
    assert torch.equal(second.composite, original), "no change inside the mask: the composite is the original"
    empty = smooth_and_composite(original, edited, torch.zeros_like(fine)[None], settings_)
    assert not empty.final_mask.any() and torch.equal(empty.composite, original)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"edited": torch.zeros(1, 96, 100, 3)},
            r"original is \(96, 128, 3\) \(H, W, C\) but edited is \(96, 100, 3\)",
        ),
        ({"fine": torch.zeros(1, 90, 128, dtype=torch.bool)}, r"fine_mask is \(90, 128\) \(H, W\) but the images"),
        ({"edited": torch.full((1, 96, 128, 3), float("nan"))}, "edited contains NaN or infinite values"),
        ({"original": torch.zeros(96, 128, 3)}, r"original must be an image \[B, H, W, C\]"),
        (
            {"fine": torch.zeros(3, 96, 128, dtype=torch.bool), "edited": torch.zeros(2, 96, 128, 3)},
            "edited has batch 2",
        ),
        ({"settings": SmootherSettings(alpha=1.5)}, r"alpha must be in \[0, 1\]"),
        ({"settings": SmootherSettings(closing_radius=-1)}, "radii must be ≥ 0"),
    ],
)
def test_bad_inputs_name_what_is_wrong(jagged_edit, change, message):
    inputs = {
        "original": jagged_edit["original"],
        "edited": jagged_edit["edited"],
        "fine": jagged_edit["fine"][None],
        "settings": SmootherSettings(),
    }
    inputs.update(change)
    with pytest.raises(ValueError, match=message):
        smooth_and_composite(inputs["original"], inputs["edited"], inputs["fine"], inputs["settings"])


def test_matches_a_numpy_opencv_implementation_of_the_released_steps():
    """The bench's reference (released steps, centred circle) on a square scene: the same final mask and the same
    pixels up to the released code's uint8 rounding."""
    pytest.importorskip("cv2")
    spec = importlib.util.spec_from_file_location("zone_compositing", REPO / "bench" / "zone" / "compositing.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    data = bench.scene(size=192, count=12)
    settings_ = SmootherSettings().scaled(192, 192)
    released_mask, released_image = bench.released_steps(data, settings_)
    tensors = {
        "segments": torch.from_numpy(data["segments"]),
        "rough": torch.from_numpy(data["rough"])[None],
        "original": torch.from_numpy(data["original"]).float()[None] / 255,
        "edited": torch.from_numpy(data["edited"]).float()[None] / 255,
    }
    # the released code truncates M_dm to uint8 before comparing with τ: ⌊x⌋ > 30 ⟺ x ≥ 31
    mask, image = bench.ours(tensors, replace(settings_, threshold=settings_.threshold + 1))
    mask = mask[0].numpy()
    assert released_mask.sum() > 1000
    assert (mask & released_mask).sum() / (mask | released_mask).sum() > 0.995
    # its gray images are rounded to uint8 too, which moves a few pixels of M_e across the threshold
    differing = (np.abs(image[0].numpy() * 255 - released_image) > 1.0 + 1e-3).any(-1)
    assert differing.sum() < 0.01 * released_mask.sum()
