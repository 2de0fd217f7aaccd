"""The example workflows (UI format) convert to API prompts and run on a real ComfyUI server."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.stand_in_scale import shrink_for_stand_ins
from harness.workflow_format import ui_to_api

WORKFLOWS = sorted((Path(__file__).resolve().parents[2] / "example_workflows").glob("*.json"))


def converted(server, path: Path) -> dict:
    return ui_to_api(json.loads(path.read_text()), server.object_info())


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_example_workflow_runs_on_the_server(comfy_server, path):
    prompt = shrink_for_stand_ins(converted(comfy_server, path))
    images = comfy_server.output_images(comfy_server.wait(comfy_server.queue(prompt)))
    assert images, f"{path.name} saved no image"
    for image in images:
        pixels = np.asarray(Image.open(image))
        assert pixels.size and np.isfinite(pixels).all()


def test_attention_mask_demo_converts_and_confines_cat_to_the_left_half(comfy_server):
    prompt = converted(comfy_server, WORKFLOWS[0].parent / "attention_mask_demo.json")
    injector = next(n for n in prompt.values() if n["class_type"] == "PreciseEdit_AttentionMaskInjector")
    assert injector["inputs"]["words"] == "cat"
    assert prompt[injector["inputs"]["text"][0]]["class_type"] == "PrimitiveStringMultiline"
    assert prompt[injector["inputs"]["mask"][0]]["class_type"] == "MaskComposite"
    sampler = next(n for n in prompt.values() if n["class_type"] == "KSampler")
    assert sampler["inputs"]["seed"] == 1234 and sampler["inputs"]["steps"] == 20
    assert prompt[sampler["inputs"]["positive"][0]]["class_type"] == "PreciseEdit_CaptureCrossAttention"
    assert not any(n["class_type"] == "MarkdownNote" for n in prompt.values())

    entry = comfy_server.wait(comfy_server.queue(shrink_for_stand_ins(prompt)))
    masks = sorted(p for p in comfy_server.output_images(entry) if "attention_mask_demo_mask" in p.name)
    assert len(masks) == 2
    cat = np.asarray(Image.open(masks[0]).convert("L"), dtype=np.float32)
    hat = np.asarray(Image.open(masks[1]).convert("L"), dtype=np.float32)
    width = cat.shape[1]
    assert cat[:, : width // 2].max() == 255
    assert cat[:, width * 3 // 4 :].max() == 0
    assert hat[:, width * 3 // 4 :].max() > 0


def test_shrinking_divides_sizes_and_caps_steps_only():
    prompt = {
        "1": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 768, "batch_size": 2}},
        "2": {"class_type": "KSampler", "inputs": {"steps": 20, "cfg": 7.0, "seed": 5, "model": ["3", 0]}},
        "3": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 32, "height": 16}},
        "4": {"class_type": "KSampler", "inputs": {"steps": 3, "cfg": 7.0, "seed": 5, "model": ["3", 0]}},
    }
    assert shrink_for_stand_ins(prompt) == {
        "1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 96, "batch_size": 2}},
        "2": {"class_type": "KSampler", "inputs": {"steps": 4, "cfg": 7.0, "seed": 5, "model": ["3", 0]}},
        "3": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 8, "height": 8}},
        "4": {"class_type": "KSampler", "inputs": {"steps": 3, "cfg": 7.0, "seed": 5, "model": ["3", 0]}},
    }
    assert prompt["1"]["inputs"]["width"] == 512


@pytest.mark.parametrize("path", [p for p in WORKFLOWS if p.stem.startswith("s2edit_")], ids=lambda p: p.stem)
def test_the_s2edit_workflows_train_invert_and_optimise_fewer_steps_at_stand_in_scale(comfy, path):
    """Their cost on a CPU is identity training (full-size CLIP-L and UNet backward passes per step), then null-text
    inversion (a DDIM step plus ``inner_steps`` UNet backward passes per step, replayed by the edit). Each loop
    still runs at least twice, so an update is made and then used."""
    from harness.workflow_format import object_info_inprocess

    prompt = ui_to_api(json.loads(path.read_text()), object_info_inprocess())
    shrunk = shrink_for_stand_ins(prompt)
    counts = {
        (node["class_type"], name): (node["inputs"][name], shrunk[node_id]["inputs"][name])
        for node_id, node in prompt.items()
        for name in ("steps", "inner_steps")
        if node["class_type"] in ("PreciseEdit_IdentityTokenTrainer", "PreciseEdit_NullTextInversion")
        and name in node["inputs"]
    }
    assert counts == {
        ("PreciseEdit_IdentityTokenTrainer", "steps"): (400, 2),
        ("PreciseEdit_NullTextInversion", "steps"): (50, 3),
        ("PreciseEdit_NullTextInversion", "inner_steps"): (10, 2),
    }
