"""ZONE's pre-processing without cropping: the longest side to N, black padding to a multiple of 32, and un-padding
that gives the photo back exactly at the model's scale."""

import pytest
import torch

from precise_edit.core.zone.image_padding import crop_to_layout, pad_to_layout, padded_layout


def photo(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A random IMAGE [1, H, W, 3] whose every pixel differs, so a shifted or cropped copy cannot match it."""
    return torch.rand(1, height, width, 3, generator=torch.Generator().manual_seed(seed))


def resize_and_pad(image: torch.Tensor, **options) -> tuple:
    from precise_edit.nodes.zone.nodes_composite import ResizeAndPad

    chosen = {"longest_side": 512, "multiple": 32, "placement": "center", "enlarge": False, "upscale_method": "area"}
    chosen.update(options)
    return ResizeAndPad.execute(image, **chosen).result


def unpad(padding, image: torch.Tensor, mask: torch.Tensor | None = None, **options) -> tuple:
    from precise_edit.nodes.zone.nodes_composite import UnPad

    chosen = {"resize_to_original": False, "upscale_method": "area"}
    chosen.update(options)
    return UnPad.execute(padding, image, mask=mask, **chosen).result


@pytest.mark.parametrize(
    ("size", "scaled", "padded", "top_left"),
    [
        ((512, 768), (341, 512), (352, 512), (5, 0)),  # landscape 3:2: ⌊512·512/768⌋ = 341, 11 rows: 5 above, 6 below
        ((1000, 600), (512, 307), (512, 320), (0, 6)),  # portrait: ⌊600·512/1000⌋ = 307, 13 columns: 6 left
        ((300, 200), (300, 200), (320, 224), (10, 12)),  # smaller than N: kept at its size (released code), padded
        ((2048, 2048), (512, 512), (512, 512), (0, 0)),
    ],
)
def test_the_longest_side_becomes_n_and_both_sides_a_multiple_of_32(size, scaled, padded, top_left):
    layout = padded_layout(*size, longest_side=512, multiple=32)
    assert (layout.height, layout.width) == scaled
    assert (layout.padded_height, layout.padded_width) == padded
    assert layout.padded_height % 32 == 0 and layout.padded_width % 32 == 0
    assert (layout.top, layout.left) == top_left
    assert (layout.original_height, layout.original_width) == size


def test_right_bottom_placement_and_enlarging_small_images():
    layout = padded_layout(300, 200, longest_side=512, multiple=32, placement="right_bottom", enlarge=True)
    assert (layout.height, layout.width, layout.padded_height, layout.padded_width) == (512, 341, 512, 352)
    assert (layout.top, layout.left, layout.bottom, layout.right) == (0, 0, 0, 11)


def test_padding_is_black_and_cropping_returns_the_image_exactly():
    layout = padded_layout(37, 90, longest_side=90, multiple=32)
    image = photo(37, 90).movedim(-1, 1)
    padded = pad_to_layout(image, layout)
    assert padded.shape == (1, 3, 64, 96)
    assert padded[..., :13, :].abs().max() == 0 and padded[..., 50:, :].abs().max() == 0  # 27 rows: 13 above
    assert padded[..., :, :3].abs().max() == 0 and padded[..., :, 93:].abs().max() == 0  # 6 columns: 3 left
    assert torch.equal(crop_to_layout(padded, layout), image)


def test_bad_sizes_and_placements_are_refused():
    with pytest.raises(ValueError, match="placement must be one of"):
        padded_layout(10, 10, longest_side=512, multiple=32, placement="middle")
    with pytest.raises(ValueError, match="sizes must be positive"):
        padded_layout(10, 10, longest_side=512, multiple=0)
    layout = padded_layout(10, 20, longest_side=512, multiple=32)
    with pytest.raises(ValueError, match=r"padded to \(32, 32\)"):
        crop_to_layout(torch.zeros(1, 3, 32, 64), layout)


def test_a_non_square_photo_round_trips_through_the_nodes_at_the_model_scale(comfy):
    image = photo(200, 300)  # 2:3, larger than N = 96
    padded, padding = resize_and_pad(image, longest_side=96)
    assert padded.shape == (1, 64, 96, 3)  # 64×96, no content cut: a centre crop to 96×96 would lose a third
    scaled, _ = resize_and_pad(image, longest_side=96, multiple=1)
    assert scaled.shape == (1, 64, 96, 3)
    assert torch.equal(padded, scaled)  # 64 is already a multiple of 32: nothing to pad

    portrait = photo(300, 130, seed=1)
    padded, padding = resize_and_pad(portrait, longest_side=96)
    assert padded.shape == (1, 96, 64, 3) and (padding.height, padding.width) == (96, 41)
    at_model_scale, _ = resize_and_pad(portrait, longest_side=96, multiple=1)
    assert at_model_scale.shape == (1, 96, 41, 3)
    mask = torch.zeros(1, 96, 64)
    mask[:, 10:20, 11:30] = 1.0
    restored, restored_mask = unpad(padding, padded, mask)
    assert torch.equal(restored, at_model_scale)  # pad → un-pad is exact
    assert restored_mask.shape == (1, 96, 41) and torch.equal(restored_mask, mask[:, :, 11:52])
    full, full_mask = unpad(padding, padded, mask, resize_to_original=True)
    assert full.shape == (1, 300, 130, 3) and full_mask.shape == (1, 300, 130)


def test_a_photo_that_fits_is_padded_without_resampling(comfy):
    image = photo(40, 70)
    padded, padding = resize_and_pad(image, longest_side=512)
    assert padded.shape == (1, 64, 96, 3)
    restored, empty = unpad(padding, padded)
    assert torch.equal(restored, image) and empty.shape == (1, 40, 70) and empty.abs().max() == 0


def test_unpad_names_the_input_whose_size_does_not_match_the_padding(comfy):
    _, padding = resize_and_pad(photo(40, 70))
    with pytest.raises(ValueError, match=r"mask is \(64, 64\) \(H, W\) but PADDING describes a 64×96 canvas"):
        unpad(padding, torch.zeros(1, 64, 96, 3), torch.zeros(1, 64, 64))
    with pytest.raises(ValueError, match=r"image is \(40, 70\) \(H, W\) but PADDING describes a 64×96 canvas"):
        unpad(padding, photo(40, 70))


def test_stand_in_runs_shrink_the_longest_side_like_any_size():
    from harness.stand_in_scale import shrink_for_stand_ins

    prompt = {"5": {"class_type": "PreciseEdit_ResizeAndPad", "inputs": {"longest_side": 512, "multiple": 32}}}
    assert shrink_for_stand_ins(prompt)["5"]["inputs"] == {"longest_side": 64, "multiple": 32}
