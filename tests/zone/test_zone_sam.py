"""SAM Loader and SAM Segment Everything on tiny random SAMs built with segment-anything's own classes."""

import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from segment_anything import SamAutomaticMaskGenerator, sam_model_registry
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from harness.errors import PromptFailed
from precise_edit.core.zone.sam_architecture import infer_architecture, sam_from_state_dict
from precise_edit.core.zone.sam_everything import EverythingSettings, segment_everything

OFFICIAL = {  # build_sam.py: width, depth, heads, global attention blocks
    "vit_b": (768, 12, 12, (2, 5, 8, 11)),
    "vit_l": (1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": (1280, 32, 16, (7, 15, 23, 31)),
}
LOOSE = {  # thresholds low enough for a random SAM to return several masks
    "points_per_side": 8,
    "pred_iou_thresh": 0.0,
    "stability_score_thresh": 0.0,
    "stability_score_offset": 1.0,
    "box_nms_thresh": 0.95,
}


def odd_sam(seed: int) -> Sam:
    """A tiny SAM with other sizes than the harness's (3 blocks, 3 heads, window 2, 2 mask outputs, 96 px)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Sam(
            image_encoder=ImageEncoderViT(
                depth=3,
                embed_dim=48,
                img_size=96,
                mlp_ratio=2.0,
                norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                num_heads=3,
                patch_size=16,
                use_rel_pos=True,
                global_attn_indexes=(0, 2),
                window_size=2,
                out_chans=16,
            ),
            prompt_encoder=PromptEncoder(
                embed_dim=16, image_embedding_size=(6, 6), input_image_size=(96, 96), mask_in_chans=4
            ),
            mask_decoder=MaskDecoder(
                num_multimask_outputs=2,
                transformer=TwoWayTransformer(depth=1, embedding_dim=16, mlp_dim=24, num_heads=8),
                transformer_dim=16,
                iou_head_depth=2,
                iou_head_hidden_dim=12,
            ),
        ).eval()


def scene(height: int = 48, width: int = 40) -> np.ndarray:
    """uint8 RGB: a red left half, a green box on the right, grey elsewhere."""
    image = np.full((height, width, 3), 128, dtype=np.uint8)
    image[:, : width // 2] = (200, 30, 30)
    image[10:30, 25:38] = (20, 200, 60)
    return image


def settings_widgets(**overrides: object) -> dict:
    widgets = {**vars(EverythingSettings()), "sort_by": "area", "if_none_pass": "blank_mask"}
    widgets.update(overrides)
    return widgets


@pytest.mark.parametrize("variant", sorted(OFFICIAL))
def test_the_released_variants_are_recognised_from_their_tensor_shapes(variant):
    with torch.device("meta"):
        state = sam_model_registry[variant]().state_dict()
    arch = infer_architecture(state)
    width, depth, heads, global_blocks = OFFICIAL[variant]
    assert (arch.variant, arch.encoder_width, arch.encoder_depth, arch.encoder_heads) == (variant, width, depth, heads)
    assert arch.global_attn_indexes == global_blocks and arch.window_size == 14
    assert (arch.image_size, arch.patch_size, arch.prompt_width, arch.mask_in_chans) == (1024, 16, 256, 16)
    assert (arch.decoder_depth, arch.decoder_mlp_width, arch.multimask_outputs) == (2, 2048, 3)
    assert (arch.iou_head_depth, arch.iou_head_width, arch.attention_downsample_rate) == (3, 256, 2)


def test_a_sam_of_any_size_is_rebuilt_exactly_from_its_state_dict():
    original = odd_sam(7)
    rebuilt, arch = sam_from_state_dict(original.state_dict())
    assert arch.variant == "custom" and arch.global_attn_indexes == (0, 2) and arch.window_size == 2
    assert (arch.encoder_heads, arch.mlp_ratio, arch.multimask_outputs, arch.iou_head_depth) == (3, 2.0, 2, 2)
    for key, value in original.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value), key
    image = torch.rand(1, 3, 96, 96) * 255
    with torch.no_grad():
        assert torch.equal(
            rebuilt.image_encoder(rebuilt.preprocess(image)), original.image_encoder(original.preprocess(image))
        )


def test_the_progress_callback_sees_every_prompt_batch_and_can_stop_the_run():
    sam, _ = sam_from_state_dict(odd_sam(3).state_dict())
    calls = []
    segment_everything(
        sam,
        scene(),
        EverythingSettings(points_per_side=6, points_per_batch=10),
        on_batch=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(i, 4) for i in range(1, 5)]  # ceil(36 / 10)

    def stop(done: int, total: int) -> None:
        raise InterruptedError(f"stopped at {done}/{total}")

    with pytest.raises(InterruptedError, match="stopped at 1/4"):
        segment_everything(sam, scene(), EverythingSettings(points_per_side=6, points_per_batch=10), on_batch=stop)


def test_the_loader_reads_the_official_pth_format_and_the_node_matches_the_released_generator(comfy, tiny_models):
    from precise_edit.nodes.zone.nodes_segment import SAMLoader, SAMSegmentEverything

    loaded = SAMLoader.execute("sam_vit_b_01ec64.pth").result[0]
    raw = torch.load(tiny_models["sam_vit_b_01ec64.pth"], weights_only=True)
    assert loaded.architecture.variant == "custom" and loaded.architecture.encoder_depth == 2
    assert all(torch.equal(loaded.model.state_dict()[key], value) for key, value in raw.items())

    image = torch.from_numpy(scene()).float()[None] / 255.0
    masks, info = SAMSegmentEverything.execute(loaded, image, **settings_widgets(**LOOSE)).result
    info = json.loads(info)
    assert masks.dtype == torch.float32 and masks.shape[1:] == (48, 40) and masks.shape[0] == info["count"] >= 2
    assert info["area"] == sorted(info["area"], reverse=True)
    assert info["area"] == masks.flatten(1).sum(1).long().tolist()
    assert next(loaded.model.parameters()).device.type == "cpu"

    reference = SamAutomaticMaskGenerator(loaded.model, output_mode="binary_mask", **vars(EverythingSettings(**LOOSE)))
    expected = sorted(reference.generate(scene()), key=lambda record: -record["area"])
    assert torch.equal(masks.bool(), torch.from_numpy(np.stack([record["segmentation"] for record in expected])))
    assert info["predicted_iou"] == [round(record["predicted_iou"], 6) for record in expected]

    by_iou = json.loads(
        SAMSegmentEverything.execute(loaded, image, **settings_widgets(**LOOSE, sort_by="predicted_iou")).result[1]
    )
    assert by_iou["predicted_iou"] == sorted(by_iou["predicted_iou"], reverse=True)
    assert sorted(by_iou["area"]) == sorted(info["area"])


def test_a_custom_sam_saved_as_pth_or_safetensors_loads(comfy, tiny_models):
    from safetensors.torch import save_file

    from precise_edit.nodes.zone.nodes_segment import load_sam

    original = odd_sam(11)
    folder = comfy.models_dir / "sams"
    torch.save(original.state_dict(), folder / "odd_sam.pth")
    save_file({k: v.contiguous() for k, v in original.state_dict().items()}, str(folder / "odd_sam.safetensors"))
    for name in ("odd_sam.pth", "odd_sam.safetensors"):
        loaded = load_sam(name)
        assert loaded.name == name and loaded.architecture.encoder_width == 48
        assert all(torch.equal(loaded.model.state_dict()[k], v) for k, v in original.state_dict().items())


def test_files_that_are_no_sam_get_errors_naming_the_file(comfy, tiny_models):
    from safetensors.torch import save_file

    from precise_edit.nodes.zone.nodes_segment import load_sam

    folder: Path = comfy.models_dir / "sams"
    save_file({"weight": torch.zeros(3, 3)}, str(folder / "not_a_sam.safetensors"))
    (folder / "garbage.pth").write_bytes(b"this is not a checkpoint")
    state = odd_sam(5).state_dict()
    del state["mask_decoder.iou_prediction_head.layers.0.weight"]
    torch.save(state, folder / "broken_sam.pth")
    with pytest.raises(ValueError, match=r"'not_a_sam.safetensors': not a Segment Anything checkpoint .* missing"):
        load_sam("not_a_sam.safetensors")
    with pytest.raises(ValueError, match=r"'garbage.pth' could not be read as a tensor checkpoint"):
        load_sam("garbage.pth")
    with pytest.raises(ValueError, match=r"'broken_sam.pth': incomplete .*iou_prediction_head.layers.0.weight"):
        load_sam("broken_sam.pth")
    with pytest.raises(FileNotFoundError, match="'missing.pth' is not in models/sams"):
        load_sam("missing.pth")


def test_bad_images_and_empty_results_get_clear_answers(comfy, tiny_models):
    from precise_edit.nodes.zone.nodes_segment import SAMSegmentEverything, load_sam

    sam = load_sam("sam_vit_b_01ec64.pth")
    image = torch.from_numpy(scene()).float()[None] / 255.0
    with pytest.raises(ValueError, match="batch of 2: SAM segments one image at a time .* ImageFromBatch"):
        SAMSegmentEverything.execute(sam, image.repeat(2, 1, 1, 1), **settings_widgets())
    with pytest.raises(ValueError, match=r"image must be a ComfyUI IMAGE \[B, H, W, 3\]"):
        SAMSegmentEverything.execute(sam, image[..., :1], **settings_widgets())
    with pytest.raises(ValueError, match="sam_model must be a SAM_MODEL"):
        SAMSegmentEverything.execute("sam", image, **settings_widgets())
    impossible = settings_widgets(points_per_side=4, pred_iou_thresh=1.0, stability_score_thresh=1.0)
    with pytest.raises(ValueError, match="SAM found no mask with predicted IoU ≥ 1.0 and stability ≥ 1.0"):
        SAMSegmentEverything.execute(sam, image, **{**impossible, "if_none_pass": "error"})
    blank, info = SAMSegmentEverything.execute(sam, image, **impossible).result
    assert torch.equal(blank, torch.zeros(1, 48, 40)) and json.loads(info)["count"] == 0
    assert "one blank mask" in json.loads(info)["message"]


def graph(sam_settings: dict, on_no_overlap: str) -> dict:
    """SAM Loader → SAM Segment Everything on a stock EmptyImage → Region-IoU Select against a stock SolidMask."""
    return {
        "1": {"class_type": "PreciseEdit_SAMLoader", "inputs": {"sam_name": "sam_vit_b_01ec64.pth"}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 40, "height": 48, "batch_size": 1, "color": 0xC81E1E}},
        "3": {
            "class_type": "PreciseEdit_SAMSegmentEverything",
            "inputs": {"sam_model": ["1", 0], "image": ["2", 0], **sam_settings},
        },
        "4": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 40, "height": 48}},
        "5": {
            "class_type": "PreciseEdit_RegionIoUSelect",
            "inputs": {
                "rough_mask": ["4", 0],
                "segments": ["3", 0],
                "mode": "argmax",
                "top_k": 3,
                "iou_floor": 0.5,
                "min_region_area": 0,
                "on_no_overlap": on_no_overlap,
            },
        },
    }


def test_region_iou_select_chains_on_the_segments_and_on_a_blank_result(run_graph, tiny_models):
    found = run_graph(graph(settings_widgets(**LOOSE), "error"), outputs=["3", "5"])
    masks, selected = found["3"][0], found["5"][0]
    scores = json.loads(found["5"][1])
    best = int(np.argmax(scores["iou"][0]))
    assert scores["selected"] == [[best]] and torch.equal(selected[0], masks[best])

    none_pass = settings_widgets(points_per_side=4, pred_iou_thresh=1.0, stability_score_thresh=1.0)
    kept = run_graph(graph(none_pass, "rough_mask"), outputs=["5"])["5"]
    assert torch.equal(kept[0], torch.ones(1, 48, 40)) and json.loads(kept[1])["used_rough_mask"] == [True]
    with pytest.raises(PromptFailed, match="no segment overlaps rough_mask 0"):
        run_graph(graph(none_pass, "error"), outputs=["5"])
