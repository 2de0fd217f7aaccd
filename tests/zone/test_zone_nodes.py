"""The ZONE compositing nodes: direct calls with every segment layout, and a graph of stock nodes in a real ComfyUI."""

import json
from collections import namedtuple

import numpy as np
import pytest
import torch

from harness.errors import PromptFailed

# Impact Pack's SEG (modules/impact/core.py)
SEG = namedtuple(
    "SEG",
    ["cropped_image", "cropped_mask", "confidence", "crop_region", "bbox", "label", "control_net_wrapper"],
    defaults=[None],
)


def rectangle(rows: slice, columns: slice, height: int = 64, width: int = 96) -> torch.Tensor:
    mask = torch.zeros(height, width)
    mask[rows, columns] = 1.0
    return mask


@pytest.fixture
def masks() -> dict[str, torch.Tensor]:
    return {
        "rough": rectangle(slice(14, 38), slice(38, 62))[None],
        "object": rectangle(slice(16, 36), slice(40, 64)),
        "elsewhere": rectangle(slice(30, 60), slice(0, 30)),
        "everything": torch.ones(64, 96),
    }


def select(rough: list, segments: list | None = None, segs: list | None = None, **options) -> tuple:
    from precise_edit.nodes.zone.nodes_segment import RegionIoUSelect

    chosen = {"mode": "argmax", "top_k": 3, "iou_floor": 0.5, "min_region_area": 64, "on_no_overlap": "error"}
    chosen.update(options)
    widgets = {name: [value] for name, value in chosen.items()}
    return RegionIoUSelect.execute(rough, segments=segments, segs=segs, **widgets).result


@pytest.mark.parametrize(
    "layout",
    ["batch", "batch-n1hw-bool", "uint8-0-255", "list-of-masks", "list-of-batches"],
)
def test_region_iou_select_accepts_the_segment_layouts_of_other_packs(comfy, masks, layout):
    stack = torch.stack([masks["everything"], masks["elsewhere"], masks["object"]])
    segments = {
        "batch": [stack],
        "batch-n1hw-bool": [stack[:, None].bool()],
        "uint8-0-255": [(stack * 255).to(torch.uint8)],
        "list-of-masks": [m[None] for m in stack],
        "list-of-batches": [stack[:2], stack[2:]],
    }[layout]
    mask, scores = select([masks["rough"]], segments)
    assert torch.equal(mask, masks["object"][None]) and mask.dtype == torch.float32
    report = json.loads(scores)
    assert report["selected"] == [[2]] and report["used_rough_mask"] == [False] and report["mode"] == "argmax"
    assert report["iou"][0] == pytest.approx([576 / 6144, 0.0, 440 / 616], abs=1e-6)


def test_impact_pack_segs_are_pasted_at_their_crop_regions_after_the_mask_segments(comfy, masks):
    crop = np.ones((20, 24), dtype=np.float32)
    segs = ((64, 96), [SEG(None, crop, 0.9, (40, 16, 64, 36), (40, 16, 64, 36), "object")])
    mask, scores = select([masks["rough"]], segs=[segs])
    assert torch.equal(mask, masks["object"][None])
    both, scores = select([masks["rough"]], segments=[masks["everything"][None]], segs=[segs], mode="top_k", top_k=2)
    assert json.loads(scores)["selected"] == [[0, 1]] and torch.equal(both, masks["everything"][None])


def test_several_rough_masks_each_get_a_segment_and_the_fallback_is_reported(comfy, masks):
    far = rectangle(slice(0, 10), slice(80, 96))[None]
    mask, scores = select(
        [masks["rough"], far], [torch.stack([masks["object"], masks["elsewhere"]])], on_no_overlap="rough_mask"
    )
    assert torch.equal(mask, torch.cat([masks["object"][None], far]))
    assert json.loads(scores)["used_rough_mask"] == [False, True]


@pytest.mark.parametrize(
    ("rough", "segments", "segs", "message"),
    [
        (None, None, None, "connect segments .* or segs"),
        (None, [torch.ones(2, 32, 48)], None, r"rough_mask is \(64, 96\) \(H, W\) but segments are \(32, 48\)"),
        ([torch.zeros(1, 64, 96)], [torch.ones(1, 64, 96)], None, r"rough_mask 0 is empty \(all zero\)"),
        (None, None, [((64, 96), [SEG(None, np.ones((5, 5)), 1.0, (0, 0, 4, 4), None, "x")])], r"segs\[0\]\[0\]"),
        (None, None, [((64, 96), [SEG(None, np.ones((5, 5)), 1.0, (90, 0, 100, 5), None, "x")])], "outside the 96×64"),
        (None, None, [(64, 96)], r"segs\[0\] must be Impact Pack SEGS"),
        (
            None,
            [torch.ones(1, 64, 96)],
            [((32, 32), [SEG(None, np.ones((4, 4)), 1.0, (0, 0, 4, 4), None, "x")])],
            r"segments are \(64, 96\) \(H, W\) but segs are \(32, 32\)",
        ),
    ],
)
def test_region_iou_select_errors_name_the_input(comfy, masks, rough, segments, segs, message):
    with pytest.raises(ValueError, match=message):
        select(rough or [masks["rough"]], segments, segs)


def test_fft_edge_smoother_scales_its_sizes_and_keeps_the_outside_bit_identical(comfy, masks):
    from precise_edit.core.zone.fft_edge_smoother import SmootherSettings, smooth_and_composite
    from precise_edit.nodes.zone.nodes_composite import FFTEdgeSmoother

    generator = torch.Generator().manual_seed(0)
    original = torch.rand(1, 64, 96, 3, generator=generator)
    edited = original.clone()
    edited[0, 16:36, 40:64] = torch.tensor([0.9, 0.1, 0.1])
    fine = masks["object"][None]
    settings = SmootherSettings()
    widgets = {"dilation_radius": 4, "low_pass_radius": 200.0, "threshold": 30.0, "closing_radius": 10, "alpha": 0.6}
    for scale, core_settings in ((True, settings.scaled(64, 96)), (False, settings)):
        mask, image = FFTEdgeSmoother.execute(original, edited, fine, scale_with_resolution=scale, **widgets).result
        expected = smooth_and_composite(original, edited, fine.bool(), core_settings)
        assert torch.equal(mask, expected.final_mask.float()) and torch.equal(image, expected.composite)
        outside = mask[..., None].expand_as(original) == 0
        assert torch.equal(image[outside], original[outside])
        assert torch.equal(image[0, 18:34, 42:62], edited[0, 18:34, 42:62])
    assert core_settings != settings.scaled(64, 96)
    with pytest.raises(ValueError, match=r"fine_mask is \(64, 95\) \(H, W\) but the images are \(64, 96\)"):
        FFTEdgeSmoother.execute(original, edited, torch.ones(1, 64, 95), scale_with_resolution=True, **widgets)


def test_difference_locator_finds_the_repainted_square(comfy):
    from precise_edit.nodes.zone.nodes_locate import DifferenceLocator

    original = torch.full((2, 64, 96, 3), 0.5)
    edited = original.clone()
    edited[:, 16:36, 40:64, 0] = 1.0
    options = {"metric": "max", "blur_sigma": 0.0, "threshold": 0.5, "threshold_mode": "relative"}
    (mask,) = DifferenceLocator.execute(original, edited, **options).result
    assert mask.shape == (2, 64, 96) and mask.dtype == torch.float32
    assert torch.equal(mask[0], rectangle(slice(16, 36), slice(40, 64)))
    absolute_options = {**options, "threshold": 0.25, "threshold_mode": "absolute"}
    absolute = DifferenceLocator.execute(original, edited, **absolute_options).result[0]
    assert torch.equal(absolute, mask)
    with pytest.raises(ValueError, match=r"original is \(64, 96, 3\) \(H, W, C\) but edited is \(64, 90, 3\)"):
        DifferenceLocator.execute(original, edited[:, :, :90], **options)


def zone_graph(segment_ids: tuple[str, ...] = ("seg_object", "seg_elsewhere", "seg_all")) -> dict:
    """EmptyImage + ImageCompositeMasked make an edit; SolidMask/MaskComposite make segments; our three nodes."""

    def placed(node_id: str, width: int, height: int, x: int, y: int) -> dict:
        return {
            f"{node_id}_solid": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": width, "height": height}},
            node_id: {
                "class_type": "MaskComposite",
                "inputs": {
                    "destination": ["blank", 0],
                    "source": [f"{node_id}_solid", 0],
                    "x": x,
                    "y": y,
                    "operation": "add",
                },
            },
            f"{node_id}_image": {"class_type": "MaskToImage", "inputs": {"mask": [node_id, 0]}},
        }

    prompt = {
        "original": {
            "class_type": "EmptyImage",
            "inputs": {"width": 96, "height": 64, "batch_size": 1, "color": 0x202040},
        },
        "patch": {
            "class_type": "EmptyImage",
            "inputs": {"width": 24, "height": 20, "batch_size": 1, "color": 0xFFE040},
        },
        "edited": {
            "class_type": "ImageCompositeMasked",
            "inputs": {
                "destination": ["original", 0],
                "source": ["patch", 0],
                "x": 40,
                "y": 16,
                "resize_source": False,
            },
        },
        "locator": {
            "class_type": "PreciseEdit_DifferenceLocator",
            "inputs": {
                "original": ["original", 0],
                "edited": ["edited", 0],
                "metric": "max",
                "blur_sigma": 1.0,
                "threshold": 0.5,
                "threshold_mode": "relative",
            },
        },
        "blank": {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 96, "height": 64}},
        **placed("seg_object", 24, 20, 40, 16),
        **placed("seg_elsewhere", 30, 30, 0, 34),
        **placed("seg_all", 96, 64, 0, 0),
        "batch_two": {
            "class_type": "ImageBatch",
            "inputs": {"image1": [f"{segment_ids[0]}_image", 0], "image2": [f"{segment_ids[1]}_image", 0]},
        },
        "batch_three": {
            "class_type": "ImageBatch",
            "inputs": {"image1": ["batch_two", 0], "image2": [f"{segment_ids[2]}_image", 0]},
        },
        "segments": {"class_type": "ImageToMask", "inputs": {"image": ["batch_three", 0], "channel": "red"}},
        "select": {
            "class_type": "PreciseEdit_RegionIoUSelect",
            "inputs": {
                "rough_mask": ["locator", 0],
                "segments": ["segments", 0],
                "mode": "argmax",
                "top_k": 3,
                "iou_floor": 0.5,
                "min_region_area": 64,
                "on_no_overlap": "error",
            },
        },
        "smooth": {
            "class_type": "PreciseEdit_FFTEdgeSmoother",
            "inputs": {
                "original": ["original", 0],
                "edited": ["edited", 0],
                "fine_mask": ["select", 0],
                "dilation_radius": 4,
                "low_pass_radius": 200.0,
                "threshold": 30.0,
                "closing_radius": 10,
                "alpha": 0.6,
                "scale_with_resolution": True,
            },
        },
    }
    return prompt


def test_the_zone_nodes_run_as_a_graph_fed_by_stock_nodes(run_graph):
    outputs = run_graph(zone_graph(), outputs=["edited", "locator", "select", "smooth"])
    (edited,) = outputs["edited"]
    (rough,) = outputs["locator"]
    fine, scores = outputs["select"]
    final, composite = outputs["smooth"]
    square = rectangle(slice(16, 36), slice(40, 64))[None]
    assert (rough * square).sum() / torch.maximum(rough, square).sum() > 0.95
    assert torch.equal(fine, square)
    assert json.loads(scores)["selected"] == [[0]]
    assert (final >= square).all()
    assert torch.equal(composite, edited), "outside the square the edit equals the original, inside it is pasted"


def test_a_graph_whose_segments_miss_the_edit_fails_with_the_reason(run_graph):
    with pytest.raises(PromptFailed, match="no segment overlaps rough_mask 0") as failure:
        run_graph(zone_graph(("seg_elsewhere", "seg_elsewhere", "seg_elsewhere")), outputs=["smooth"])
    assert failure.value.node_id == "select"
