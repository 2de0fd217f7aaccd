"""The ZONE example workflows on the server: wired as documented, the photo padded rather than cropped, SAM given
the original for a removal and the edit otherwise, and after three chained turns every pixel outside all three
turns' final masks is the original's, bit for bit.

tests/common/test_workflows.py runs the workflows as they are. Here the segmenter's output is replaced by the four
quadrants of the image: the tiny random SAM stand-in returns arbitrary segments (often the whole image), which
would leave nothing outside the masks to check; everything else runs as in the workflow.
"""

import json

import numpy as np
import pytest
from PIL import Image

from harness.ui_workflow import example_workflow_dir, run_prompt

# 768 × 512: at the stand-ins' scale 64 × 42, padded to 64 × 64
PHOTO = example_workflow_dir() / "input" / "zone_scene.png"
TOP = (64 - 42) // 2  # the rows of padding above the photo on the padded canvas


def with_quadrant_segments(prompt: dict) -> dict:
    """The prompt with every SAM Segment Everything replaced by the image's four quadrants as a MASK batch."""
    prompt = json.loads(json.dumps(prompt))
    for node_id in [n for n, node in prompt.items() if node["class_type"] == "PreciseEdit_SAMSegmentEverything"]:
        del prompt[node_id]
        zero = f"{node_id}_zero"
        prompt[zero] = {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 512, "height": 512}}
        prompt[f"{node_id}_one"] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 256, "height": 256}}
        images = []
        for index, (x, y) in enumerate([(0, 0), (32, 0), (0, 32), (32, 32)]):  # at the stand-ins' 1/8 scale
            box, image = f"{node_id}_box{index}", f"{node_id}_image{index}"
            prompt[box] = {
                "class_type": "MaskComposite",
                "inputs": {
                    "destination": [zero, 0],
                    "source": [f"{node_id}_one", 0],
                    "x": x,
                    "y": y,
                    "operation": "add",
                },
            }
            prompt[image] = {"class_type": "MaskToImage", "inputs": {"mask": [box, 0]}}
            images.append(image)
        batch = images[0]
        for index, image in enumerate(images[1:]):
            prompt[f"{node_id}_batch{index}"] = {
                "class_type": "ImageBatch",
                "inputs": {"image1": [batch, 0], "image2": [image, 0]},
            }
            batch = f"{node_id}_batch{index}"
        prompt[f"{node_id}_masks"] = {"class_type": "ImageToMask", "inputs": {"image": [batch, 0], "channel": "red"}}
        for node in prompt.values():
            for name, value in node["inputs"].items():
                if value == [node_id, 0]:
                    node["inputs"][name] = [f"{node_id}_masks", 0]
    return prompt


def with_sam_inputs_saved(prompt: dict, name: str) -> dict:
    """The prompt with every image that reaches a SAM Segment Everything also saved, as ``<name>_sam_<node>``."""
    prompt = json.loads(json.dumps(prompt))
    for node_id, node in list(prompt.items()):
        if node["class_type"] == "PreciseEdit_SAMSegmentEverything":
            prompt[f"{node_id}_seen"] = {
                "class_type": "SaveImage",
                "inputs": {"images": node["inputs"]["image"], "filename_prefix": f"precise_edit/{name}_sam{node_id}"},
            }
    return prompt


def assert_photo_is_not_cropped(original: np.ndarray) -> None:
    """The saved original is the whole 3:2 photo scaled to 64 × 42: its far-left shelf and far-right window, which a
    centre crop to a square would cut off, are there, and it matches the photo resized, to the 8-bit rounding."""
    photo = Image.open(PHOTO).convert("RGB")
    assert photo.size == (768, 512) and original.shape == (42, 64, 3)
    expected = np.asarray(photo.resize((64, 42), Image.Resampling.LANCZOS)).astype(int)
    assert np.abs(original.astype(int) - expected).max() <= 1
    window, shelf = np.array([220, 220, 210]), np.array([232, 197, 71])
    assert (np.abs(original[7:14, 56:60].astype(int) - window).max(-1) <= 6).all()  # x 656-736, y 64-192 of 768
    assert (np.abs(original[8, 5:7].astype(int) - shelf).max(-1) <= 6).all()  # x 40-100, y 96-112


def saved(server, prompt: dict) -> dict[str, np.ndarray]:
    """Run the prompt at the stand-ins' scale; its saved images by filename prefix."""
    run = run_prompt(server, prompt)
    return {prefix: run.pixels(prefix) for prefix in run.saved()}


@pytest.mark.parametrize(("instruction", "segmented"), [("make the box red", "edited"), ("remove the box", "original")])
def test_local_edit_workflow_chains_locator_guider_sam_and_smoother(comfy_server, example_runs, instruction, segmented):
    prompt = example_runs.prompt("zone_local_edit")
    kinds = {node_id: node["class_type"] for node_id, node in prompt.items()}
    smoother = next(n for n in prompt.values() if n["class_type"] == "PreciseEdit_FFTEdgeSmoother")
    select = prompt[smoother["inputs"]["fine_mask"][0]]
    region = prompt[select["inputs"]["rough_mask"][0]]
    assert region["class_type"] == "PreciseEdit_EditRegionFromAttention"
    sam = prompt[select["inputs"]["segments"][0]]
    assert sam["class_type"] == "PreciseEdit_SAMSegmentEverything"
    chooser = prompt[sam["inputs"]["image"][0]]
    assert chooser["class_type"] == "PreciseEdit_ImageToSegment"
    assert chooser["inputs"]["original"] == smoother["inputs"]["original"]
    assert chooser["inputs"]["edited"] == smoother["inputs"]["edited"]
    assert kinds[smoother["inputs"]["original"][0]] == "PreciseEdit_ResizeAndPad"
    assert "ImageScale" not in kinds.values()
    assert kinds[region["inputs"]["attention"][0]] == "PreciseEdit_InstructionLocator"
    sampler = prompt[region["inputs"]["latent"][0]]
    guider = prompt[sampler["inputs"]["guider"][0]]
    assert guider["class_type"] == "PreciseEdit_FusedInstructGuider"
    assert kinds[guider["inputs"]["beta"][0]] == "PreciseEdit_ActionClassifier" and guider["inputs"]["beta"][1] == 1
    assert chooser["inputs"]["segment_original"] == [guider["inputs"]["beta"][0], 3]  # the same classifier decides
    assert kinds[guider["inputs"]["model"][0]] == "PreciseEdit_InstructionLocator"
    assert kinds[guider["inputs"]["magicbrush"][0]] == "UNETLoader"

    classifier = prompt[guider["inputs"]["beta"][0]]
    prompt[classifier["inputs"]["instruction"][0]]["inputs"]["value"] = instruction
    images = saved(comfy_server, with_quadrant_segments(with_sam_inputs_saved(prompt, "zone_local_edit")))
    original, composite = images["zone_local_edit_original"], images["zone_local_edit"]
    assert_photo_is_not_cropped(original)
    outside = images["zone_local_edit_mask"][..., 0] == 0
    assert composite.shape == (42, 64, 3) and outside.any()
    assert (composite[outside] == original[outside]).all()
    (seen,) = [image for name, image in images.items() if name.startswith("zone_local_edit_sam")]
    assert seen.shape == (64, 64, 3)  # SAM sees the padded canvas
    other = "original" if segmented == "edited" else "edited"
    assert (images[f"zone_local_edit_{segmented}"] == seen[TOP : TOP + 42]).all()
    assert not (images[f"zone_local_edit_{other}"] == seen[TOP : TOP + 42]).all()


def test_three_turns_keep_every_pixel_outside_the_turns_masks(comfy_server, example_runs):
    prompt = example_runs.prompt("zone_multi_turn")
    smoothers = sorted(
        (node_id for node_id, node in prompt.items() if node["class_type"] == "PreciseEdit_FFTEdgeSmoother"), key=int
    )
    assert len(smoothers) == 3
    assert prompt[prompt[smoothers[0]]["inputs"]["original"][0]]["class_type"] == "PreciseEdit_ResizeAndPad"
    for before, after in zip(smoothers, smoothers[1:], strict=False):
        assert prompt[after]["inputs"]["original"] == [before, 1]  # each turn edits the previous composite
    guiders = [n for n in prompt.values() if n["class_type"] == "PreciseEdit_FusedInstructGuider"]
    classifiers = [prompt[guider["inputs"]["beta"][0]] for guider in guiders]
    assert all(c["class_type"] == "PreciseEdit_ActionClassifier" for c in classifiers)  # β from the action
    texts = [prompt[c["inputs"]["instruction"][0]]["inputs"]["value"] for c in classifiers]
    assert len(texts) == 3 and sum(text.startswith("remove") for text in texts) == 1

    images = saved(comfy_server, with_quadrant_segments(with_sam_inputs_saved(prompt, "zone_multi_turn")))
    original = images["zone_multi_turn_original"]
    assert_photo_is_not_cropped(original)
    outside = np.ones(original.shape[:2], dtype=bool)
    for turn in (1, 2, 3):
        outside &= images[f"zone_multi_turn_{turn}_mask"][..., 0] == 0
    final = images["zone_multi_turn_3"]
    assert final.shape == original.shape == (42, 64, 3) and outside.any()
    assert (final[outside] == original[outside]).all()
    # SAM segments each turn's edit, except in the remove turn: there, the image before it (turn 2's composite)
    sam_inputs = sorted((name for name in images if "_sam" in name), key=lambda name: int(name.rsplit("sam", 1)[1]))
    seen = [images[name][TOP : TOP + 42] for name in sam_inputs]
    assert len(seen) == 3
    assert (seen[0] == images["zone_multi_turn_1_edited"]).all()
    assert (seen[1] == images["zone_multi_turn_2_edited"]).all()
    assert (seen[2] == images["zone_multi_turn_2"]).all() and not (seen[2] == images["zone_multi_turn_3_edited"]).all()
