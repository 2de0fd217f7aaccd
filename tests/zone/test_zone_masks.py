"""The mask machinery under ZONE's compositing: morphology, connected components, boxes and mask stacks."""

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from precise_edit.core.masks.binary_morphology import close, dilate, erode
from precise_edit.core.masks.bounding_box import bounding_box
from precise_edit.core.masks.connected_components import fill_holes, remove_small_regions, row_runs
from precise_edit.core.masks.mask_stack import mask_stack


@st.composite
def random_masks(draw, max_side: int = 24, batch: int = 2) -> torch.Tensor:
    height, width = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    density = draw(st.floats(0.05, 0.95))
    seed = draw(st.integers(0, 2**31 - 1))
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, height, width, generator=generator) < density


@settings(max_examples=30, deadline=None)
@given(mask=random_masks(), radius_y=st.integers(0, 9), radius_x=st.integers(0, 9))
def test_morphology_equals_kornia_with_a_ones_kernel(mask, radius_y, radius_x):
    kornia = pytest.importorskip("kornia")
    kernel = torch.ones(2 * radius_y + 1, 2 * radius_x + 1)
    image = mask[:, None].float()
    assert torch.equal(dilate(mask, radius_y, radius_x), kornia.morphology.dilation(image, kernel)[:, 0] > 0.5)
    assert torch.equal(erode(mask, radius_y, radius_x), kornia.morphology.erosion(image, kernel)[:, 0] > 0.5)
    assert torch.equal(close(mask, radius_y, radius_x), kornia.morphology.closing(image, kernel)[:, 0] > 0.5)


def test_closing_bridges_a_gap_narrower_than_the_kernel_and_ignores_the_border():
    mask = torch.zeros(1, 9, 20, dtype=torch.bool)
    mask[0, 2:7, 0:8] = True
    mask[0, 2:7, 10:20] = True
    closed = close(mask, 1, 1)
    assert closed[0, 2:7, :].all()
    assert not closed[0, :2].any() and not closed[0, 7:].any()
    assert torch.equal(close(mask, 1, 0), mask)


def test_dilation_by_radius_r_equals_r_dilations_by_a_3x3_square():
    mask = torch.zeros(1, 15, 15, dtype=torch.bool)
    mask[0, 7, 7] = mask[0, 0, 14] = True
    repeated = mask
    for _ in range(4):
        repeated = dilate(repeated, 1)
    assert torch.equal(dilate(mask, 4), repeated)
    assert dilate(mask, 4)[0, 3:12, 3:12].all() and not dilate(mask, 4)[0, 12:, :3].any()


def test_morphology_rejects_non_bool_masks_and_negative_radii():
    with pytest.raises(ValueError, match="bool mask"):
        dilate(torch.zeros(4, 4), 1)
    with pytest.raises(ValueError, match="≥ 0"):
        erode(torch.zeros(4, 4, dtype=torch.bool), -1)


@settings(max_examples=30, deadline=None)
@given(mask=random_masks(max_side=30, batch=3), min_area=st.integers(0, 12))
def test_small_region_removal_matches_scipy_labelling(mask, min_area):
    kept = remove_small_regions(mask, min_area)
    for image, result in zip(mask.numpy(), kept.numpy(), strict=True):
        labels, _ = ndi.label(image)
        areas = np.bincount(labels.ravel())
        keep = areas >= min_area
        keep[0] = False
        assert (result == keep[labels]).all()


def test_components_are_4_connected_and_rooted_at_their_first_pixel():
    mask = torch.tensor(
        [
            [1, 1, 0, 0, 1],
            [0, 1, 0, 1, 0],
            [0, 1, 1, 1, 0],
            [1, 0, 0, 0, 1],
        ],
        dtype=torch.bool,
    )[None]
    runs = row_runs(mask)
    roots = runs.start[runs.root]
    assert runs.start.tolist() == [0, 4, 6, 8, 11, 15, 19]
    assert roots.tolist() == [0, 4, 0, 0, 0, 15, 19]
    assert remove_small_regions(mask, 2).sum() == 7


def test_fill_holes_fills_enclosed_background_only():
    ring = torch.zeros(1, 10, 12, dtype=torch.bool)
    ring[0, 2:8, 2:9] = True
    ring[0, 4:6, 4:7] = False
    open_ring = ring.clone()
    open_ring[0, 4, 2] = False
    open_ring[0, 4, 3] = False
    corner = torch.zeros(1, 10, 12, dtype=torch.bool)
    corner[0, :4, 3] = corner[0, 3, :4] = True
    diagonal = torch.zeros(1, 5, 5, dtype=torch.bool)
    diagonal[0, [1, 2, 2, 3], [2, 1, 3, 2]] = True

    assert fill_holes(ring)[0, 4:6, 4:7].all() and fill_holes(ring).sum() == 42
    assert torch.equal(fill_holes(open_ring), open_ring)
    assert torch.equal(fill_holes(corner), corner), "a region walled off against the image border is no hole"
    assert fill_holes(diagonal)[0, 2, 2], "background is 4-connected, so a diagonal ring encloses its centre"
    assert torch.equal(fill_holes(torch.stack([ring[0], open_ring[0]])), torch.cat([fill_holes(ring), open_ring]))


@settings(max_examples=30, deadline=None)
@given(mask=random_masks(max_side=30, batch=1))
def test_fill_holes_matches_opencv_external_contours(mask):
    cv2 = pytest.importorskip("cv2")
    image = mask[0].numpy().astype(np.uint8) * 255
    contours, _ = cv2.findContours(image, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    expected = cv2.drawContours(np.zeros_like(image), contours, -1, 255, cv2.FILLED) > 0
    assert (fill_holes(mask)[0].numpy() == expected).all()


def test_bounding_box_spans_the_batch_and_grows_by_the_margin_within_the_image():
    mask = torch.zeros(2, 10, 12, dtype=torch.bool)
    mask[0, 3, 4] = mask[1, 6, 9] = True
    assert bounding_box(mask) == (slice(3, 7), slice(4, 10))
    assert bounding_box(mask, 2) == (slice(1, 9), slice(2, 12))
    assert bounding_box(torch.zeros(3, 4, dtype=torch.bool)) is None


@pytest.mark.parametrize(
    ("masks", "expected"),
    [
        (torch.tensor([[0.2, 0.7]]), [[[False, True]]]),
        (torch.tensor([[[[0, 255]]]], dtype=torch.uint8), [[[False, True]]]),
        (torch.tensor([[[1, 0]], [[0, 1]]], dtype=torch.uint8), [[[True, False]], [[False, True]]]),
        (
            [torch.tensor([[True, False]]), torch.zeros(2, 1, 1, 2)],
            [[[True, False]], [[False, False]], [[False, False]]],
        ),
    ],
    ids=["float-2d", "uint8-n1hw", "uint8-01", "list"],
)
def test_mask_stack_accepts_the_layouts_of_other_packs(masks, expected):
    assert mask_stack(masks, "segments").tolist() == expected


@pytest.mark.parametrize(
    ("masks", "message"),
    [
        (torch.zeros(2, 3, 4, 5), r"segments must be \[H, W\]"),
        ([], "segments is an empty list"),
        ([torch.zeros(3, 3), torch.zeros(4, 4)], "differ in size"),
        (torch.tensor([[float("nan")]]), "segments contains NaN"),
        ([torch.zeros(2, 2), np.zeros((2, 2))], r"segments\[1\] must be a torch tensor"),
        (torch.zeros(0, 4, 4), "segments is empty"),
    ],
)
def test_mask_stack_names_the_input_in_its_errors(masks, message):
    with pytest.raises(ValueError, match=message):
        mask_stack(masks, "segments")
