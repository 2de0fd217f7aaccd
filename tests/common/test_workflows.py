"""The example workflows (UI format) convert to API prompts and run on a real ComfyUI server, each queued once per
test run (the ``example_runs`` fixture), saving the images they are written to save."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.errors import PromptFailed
from harness.stand_in_scale import shrink_for_stand_ins
from harness.ui_workflow import NOT_RUN, ExampleRuns, example_workflow_dir, example_workflows, ui_prompt

WORKFLOWS = example_workflows()
RUN = [path for path in WORKFLOWS if path.stem not in NOT_RUN]
INPUTS = example_workflow_dir() / "input"

# What each workflow saves at the stand-ins' scale: filename prefix -> (batch size, height, width). The sizes follow
# the inputs: an empty latent or a scale node divided by 8, a loaded image as it is, ZONE's 768 × 512 photo at 64 × 42.
SAVES = {
    "attention_mask_demo": {
        "attention_mask_demo": (1, 64, 64),
        "attention_mask_demo_heatmap": (2, 64, 64),  # one per captured word: cat, hat
        "attention_mask_demo_mask": (2, 64, 64),
    },
    "deltaedit_unclip": {"deltaedit_unedited": (1, 96, 96), "deltaedit_smile": (1, 96, 96)},
    "mcdm_edit": {"mcdm_edit": (1, 64, 64)},
    "mcdm_make_pairs": {"mcdm_pairs_source": (1, 64, 64), "mcdm_pairs_target": (1, 64, 64)},  # a 128 × 64 canvas
    "s2edit_compositional": {"s2edit_compositional": (2, 64, 64)},  # the source reconstruction and the edit
    "s2edit_identity_edit": {"s2edit_identity_edit": (2, 64, 64)},
    "zone_difference_compositing": {
        "zone_difference_compositing": (1, 64, 64),
        "zone_difference_compositing_mask": (1, 64, 64),
        "zone_difference_compositing_edited": (1, 64, 64),
    },
    "zone_local_edit": {f"zone_local_edit{suffix}": (1, 42, 64) for suffix in ("", "_mask", "_edited", "_original")},
    "zone_multi_turn": {
        f"zone_multi_turn{suffix}": (1, 42, 64)
        for suffix in ("_original", *(f"_{turn}{kind}" for turn in (1, 2, 3) for kind in ("", "_mask", "_edited")))
    },
}
# The two images each workflow's edit must tell apart: (filename prefix, index in its batch) of the image before the
# edit, or the input file it edits, and of the image after it.
EDITS = {
    "attention_mask_demo": (("attention_mask_demo_mask", 0), ("attention_mask_demo_mask", 1)),  # cat's, hat's
    "deltaedit_unclip": (("deltaedit_unedited", 0), ("deltaedit_smile", 0)),
    "mcdm_edit": (INPUTS / "mcdm_portrait.png", ("mcdm_edit", 0)),
    "mcdm_make_pairs": (("mcdm_pairs_source", 0), ("mcdm_pairs_target", 0)),
    "s2edit_compositional": (("s2edit_compositional", 0), ("s2edit_compositional", 1)),
    "s2edit_identity_edit": (("s2edit_identity_edit", 0), ("s2edit_identity_edit", 1)),
    "zone_difference_compositing": (("zone_difference_compositing_edited", 0), ("zone_difference_compositing", 0)),
    "zone_local_edit": (("zone_local_edit_original", 0), ("zone_local_edit", 0)),
    "zone_multi_turn": (("zone_multi_turn_original", 0), ("zone_multi_turn_3", 0)),
}


def test_every_example_workflow_says_what_it_saves_and_edits():
    assert sorted(SAVES) == sorted(EDITS) == [path.stem for path in RUN]


def test_only_the_full_size_dit_workflows_are_not_run_and_each_says_why():
    assert sorted(NOT_RUN) == ["zone_flux_kontext", "zone_qwen_image_edit"]
    assert set(NOT_RUN) <= {path.stem for path in WORKFLOWS}
    for name, reason in NOT_RUN.items():
        assert "no tiny stand-in" in reason and "tests/zone/test_dit_locator.py" in reason, name
        with pytest.raises(ValueError, match=f"{name} is not run here: .* no tiny stand-in"):
            ExampleRuns(server=None)[name]  # type: ignore[arg-type]


def test_the_main_job_reports_a_workflow_not_run_with_its_reason(tmp_path):
    from harness.run_workflows import WorkflowResult, write_report

    results = [WorkflowResult(name, True, 0.0, 0.0, skipped=reason) for name, reason in NOT_RUN.items()]
    report = write_report(results, tmp_path).read_text()
    for name, reason in NOT_RUN.items():
        assert f"| {name} | skipped | " in report and reason in report


@pytest.mark.parametrize("name", sorted(NOT_RUN))
def test_the_workflows_not_run_pass_the_servers_validation(comfy_server, name):
    """The server accepts the prompt as written (the harness's model folders hold empty files under the published
    names: validation reads only the folders' lists); it is cancelled at once (loading an empty file would fail).
    A file name not in its folder is refused, so the check reads the names."""
    prompt = ui_prompt(example_workflow_dir() / f"{name}.json", comfy_server.object_info())
    locator = next(node for node in prompt.values() if node["class_type"] == "PreciseEdit_InstructionLocator")
    assert locator["inputs"]["branches"] == "positive"
    comfy_server.cancel(comfy_server.queue(prompt))
    loader = next(node for node in prompt.values() if node["class_type"] == "UNETLoader")
    loader["inputs"]["unet_name"] = "not-downloaded.safetensors"
    with pytest.raises(PromptFailed, match="not-downloaded.safetensors"):
        comfy_server.queue(prompt)


@pytest.mark.parametrize("path", RUN, ids=[p.stem for p in RUN])
def test_example_workflow_saves_its_images_at_the_input_sizes_and_edits_them(example_runs, path):
    run = example_runs[path.stem]
    saved = run.saved()
    assert {prefix: len(paths) for prefix, paths in saved.items()} == {
        prefix: batch for prefix, (batch, _, _) in SAVES[path.stem].items()
    }
    for prefix, (batch, height, width) in SAVES[path.stem].items():
        for index in range(batch):
            assert run.pixels(prefix, index).shape == (height, width, 3), f"{prefix} [{index}]"
    before, after = (
        np.asarray(Image.open(image).convert("RGB")) if isinstance(image, Path) else run.pixels(*image)
        for image in EDITS[path.stem]
    )
    assert before.shape == after.shape and (before != after).any(), f"{path.stem}: the edit changed nothing"


def test_attention_mask_demo_converts_and_confines_cat_to_the_left_half(example_runs):
    prompt = example_runs.prompt("attention_mask_demo")
    injector = next(n for n in prompt.values() if n["class_type"] == "PreciseEdit_AttentionMaskInjector")
    assert injector["inputs"]["words"] == "cat"
    assert prompt[injector["inputs"]["text"][0]]["class_type"] == "PrimitiveStringMultiline"
    assert prompt[injector["inputs"]["mask"][0]]["class_type"] == "MaskComposite"
    sampler = next(n for n in prompt.values() if n["class_type"] == "KSampler")
    assert sampler["inputs"]["seed"] == 1234 and sampler["inputs"]["steps"] == 20
    assert prompt[sampler["inputs"]["positive"][0]]["class_type"] == "PreciseEdit_CaptureCrossAttention"
    assert not any(n["class_type"] == "MarkdownNote" for n in prompt.values())

    run = example_runs["attention_mask_demo"]
    cat, hat = (run.pixels("attention_mask_demo_mask", index, mode="L") for index in (0, 1))
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

    prompt = ui_prompt(path, object_info_inprocess())
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
