"""Region-IoU (ZONE Eq. 6) on constructed masks with known answers, and against a brute-force count."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from precise_edit.core.zone.region_iou import region_iou, select_region


def rectangle(height: int, width: int, rows: slice, columns: slice) -> torch.Tensor:
    mask = torch.zeros(height, width, dtype=torch.bool)
    mask[rows, columns] = True
    return mask


def brute_force_iou(rough: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    intersection = (rough[:, None] & segments[None]).flatten(2).sum(-1).double()
    union = (rough[:, None] | segments[None]).flatten(2).sum(-1).double()
    return intersection / union.clamp(min=1)


@pytest.fixture
def scene() -> tuple[torch.Tensor, torch.Tensor]:
    """A 40×48 rough mask over rows 10–29, columns 12–35, and four segments around it."""
    rough = rectangle(40, 48, slice(10, 30), slice(12, 36))
    segments = torch.stack(
        [
            rectangle(40, 48, slice(0, 40), slice(0, 48)),  # the whole image: IoU 480/1920 = 0.25
            rectangle(40, 48, slice(12, 30), slice(12, 36)),  # inside the rough mask: 432/480 = 0.9
            rectangle(40, 48, slice(8, 30), slice(12, 36)),  # a bit taller: 480/528 ≈ 0.909
            rectangle(40, 48, slice(0, 8), slice(0, 10)),  # elsewhere: 0
        ]
    )
    return rough, segments


def test_the_segment_with_the_largest_iou_wins(scene):
    rough, segments = scene
    selection = select_region(rough[None], segments)
    assert selection.iou[0].tolist() == pytest.approx([0.25, 0.9, 480 / 528, 0.0])
    assert selection.selected == [[2]] and selection.used_rough_mask == [False]
    assert torch.equal(selection.mask[0], segments[2])


def test_top_k_unites_the_k_best_and_the_floor_all_that_reach_it(scene):
    rough, segments = scene
    top_two = select_region(rough[None], segments, mode="top_k", top_k=2)
    assert top_two.selected == [[1, 2]]
    assert torch.equal(top_two.mask[0], segments[1] | segments[2])
    assert select_region(rough[None], segments, mode="top_k", top_k=10).selected == [[0, 1, 2]]
    assert select_region(rough[None], segments, mode="iou_floor", iou_floor=0.25).selected == [[0, 1, 2]]
    assert select_region(rough[None], segments, mode="iou_floor", iou_floor=0.905).selected == [[2]]


def test_ties_go_to_the_lowest_index_as_in_the_released_code(scene):
    rough, segments = scene
    twins = torch.stack([segments[3], segments[1], segments[1], segments[0]])
    assert select_region(rough[None], twins).selected == [[1]]
    assert select_region(rough[None], twins, mode="top_k", top_k=1).selected == [[1]]


def test_each_rough_mask_of_a_batch_gets_its_own_segment(scene):
    rough, segments = scene
    elsewhere = rectangle(40, 48, slice(0, 8), slice(0, 12))
    selection = select_region(torch.stack([rough, elsewhere]), segments)
    assert selection.selected == [[2], [3]]
    assert torch.equal(selection.mask, segments[[2, 3]])


def test_regions_under_64_pixels_are_removed_before_and_after_selection(scene):
    rough, segments = scene
    speckled = rough.clone()
    speckled[0:7, 40:47] = True  # 49 px far from the object: would lower every IoU if it were kept
    with_crumb = segments.clone()
    with_crumb[2, 36:38, 40:42] = True  # a 4 px crumb of the winning segment
    selection = select_region(speckled[None], with_crumb)
    assert selection.iou[0, 2] == pytest.approx(480 / 532)
    assert selection.selected == [[2]] and torch.equal(selection.mask[0], segments[2])
    unfiltered = select_region(speckled[None], with_crumb, min_region_area=0)
    assert unfiltered.iou[0, 2] == pytest.approx(480 / 581)
    assert torch.equal(unfiltered.mask[0], with_crumb[2])


def test_small_regions_are_judged_by_area_not_area_times_label(scene):
    """The released filter compares area × label index with 64; a 40 px region with label 2 would survive there."""
    rough, segments = scene
    first_block = rectangle(40, 48, slice(0, 5), slice(0, 8))  # label 1, 40 px: 40 × 1 < 64, removed there too
    last_block = rectangle(40, 48, slice(32, 37), slice(40, 48))  # label 3, 40 px: 40 × 3 ≥ 64, kept there
    selection = select_region((first_block | rough | last_block)[None], segments)
    assert selection.iou[0, 2] == pytest.approx(480 / 528)
    assert torch.equal(selection.mask[0], segments[2])


def test_no_overlap_is_an_error_by_default_and_falls_back_to_the_rough_mask_on_request(scene):
    rough, segments = scene
    far = rectangle(40, 48, slice(32, 40), slice(38, 48))
    with pytest.raises(ValueError, match=r"no segment overlaps rough_mask 0 .*best Region-IoU 0\.0000.*on_no_overlap"):
        select_region(far[None], segments[1:])
    fallback = select_region(far[None], segments[1:], on_no_overlap="rough_mask")
    assert fallback.used_rough_mask == [True] and fallback.selected == [[]]
    assert torch.equal(fallback.mask[0], far)
    with pytest.raises(ValueError, match="best Region-IoU 0.9091"):
        select_region(rough[None], segments, mode="iou_floor", iou_floor=0.95)


@pytest.mark.parametrize(
    ("rough", "segments", "options", "message"),
    [
        (torch.zeros(1, 40, 48, dtype=torch.bool), None, {}, r"rough_mask 0 is empty \(all zero\)"),
        (rectangle(40, 48, slice(0, 5), slice(0, 5))[None], None, {}, "only has regions smaller than .* 64 px"),
        (None, torch.zeros(2, 40, 40, dtype=torch.bool), {}, r"rough_mask is \(40, 48\) \(H, W\) but segments are"),
        (None, torch.zeros(0, 40, 48, dtype=torch.bool), {}, "segments is empty"),
        (None, None, {"mode": "best"}, "mode must be one of"),
        (None, None, {"mode": "top_k", "top_k": 0}, "top_k must be ≥ 1"),
        (None, None, {"mode": "iou_floor", "iou_floor": 0.0}, r"iou_floor must be in \(0, 1\]"),
        (None, None, {"on_no_overlap": "ignore"}, "on_no_overlap must be one of"),
    ],
)
def test_bad_inputs_give_clear_errors(scene, rough, segments, options, message):
    rough = scene[0][None] if rough is None else rough
    segments = scene[1] if segments is None else segments
    with pytest.raises(ValueError, match=message):
        select_region(rough, segments, **options)


@settings(max_examples=30, deadline=None)
@given(
    height=st.integers(1, 40),
    width=st.integers(1, 1100),
    count=st.integers(1, 6),
    rough_batch=st.integers(1, 3),
    seed=st.integers(0, 2**31 - 1),
)
def test_iou_equals_a_brute_force_count(height, width, count, rough_batch, seed):
    """Widths up to 1100 cover rows that are not a multiple of 8 pixels and blocks of more than 128 words."""
    generator = torch.Generator().manual_seed(seed)
    rough = torch.rand(rough_batch, height, width, generator=generator) < 0.3
    segments = torch.rand(count, height, width, generator=generator) < torch.rand(count, 1, 1, generator=generator)
    assert torch.equal(region_iou(rough, segments), brute_force_iou(rough, segments))


@settings(max_examples=30, deadline=None)
@given(size=st.integers(16, 48), count=st.integers(1, 8), seed=st.integers(0, 2**31 - 1))
def test_selection_properties_on_random_blobs(size, count, seed):
    generator = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centres = torch.rand(count + 1, 2, generator=generator) * size
    radii = torch.rand(count + 1, 1, 1, generator=generator) * size / 2 + 3
    blobs = (y - centres[:, 0, None, None]) ** 2 + (x - centres[:, 1, None, None]) ** 2 < radii**2
    rough, segments = blobs[:1], blobs[1:]
    selection = select_region(rough, segments, min_region_area=0, on_no_overlap="rough_mask")
    iou = brute_force_iou(rough, segments)[0]
    assert torch.equal(selection.iou[0], iou)
    if iou.max() > 0:
        best = int(iou.argmax())
        assert selection.selected == [[best]] and torch.equal(selection.mask[0], segments[best])
        union = select_region(rough, segments, mode="top_k", top_k=count, min_region_area=0)
        assert torch.equal(union.mask[0], segments[iou > 0].any(0))
    else:
        assert selection.used_rough_mask == [True] and torch.equal(selection.mask, rough)
