"""The ZONE example workflows on the server: wired as documented, and after three chained turns every pixel outside
all three turns' final masks is the original's, bit for bit.

tests/test_workflows.py runs the workflows as they are. Here the segmenter's output is replaced by the four
quadrants of the image: the tiny random SAM stand-in returns arbitrary segments (often the whole image), which
would leave nothing outside the masks to check; everything else runs as in the workflow.
"""

import json
from pathlib import Path

import numpy as np
from PIL import Image

from harness.stand_in_scale import shrink_for_stand_ins
from harness.workflow_format import ui_to_api

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"


def prompt_of(server, name: str) -> dict:
    return ui_to_api(json.loads((WORKFLOWS / name).read_text()), server.object_info())


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


def saved(server, prompt: dict) -> dict[str, np.ndarray]:
    entry = server.wait(server.queue(shrink_for_stand_ins(prompt)))
    return {
        path.name.rsplit("_", 2)[0]: np.asarray(Image.open(path).convert("RGB")) for path in server.output_images(entry)
    }


def test_local_edit_workflow_chains_locator_guider_sam_and_smoother(comfy_server):
    prompt = prompt_of(comfy_server, "zone_local_edit.json")
    kinds = {node_id: node["class_type"] for node_id, node in prompt.items()}
    smoother = next(n for n in prompt.values() if n["class_type"] == "PreciseEdit_FFTEdgeSmoother")
    select = prompt[smoother["inputs"]["fine_mask"][0]]
    region = prompt[select["inputs"]["rough_mask"][0]]
    assert region["class_type"] == "PreciseEdit_EditRegionFromAttention"
    assert kinds[select["inputs"]["segments"][0]] == "PreciseEdit_SAMSegmentEverything"
    assert kinds[region["inputs"]["attention"][0]] == "PreciseEdit_InstructionLocator"
    sampler = prompt[region["inputs"]["latent"][0]]
    guider = prompt[sampler["inputs"]["guider"][0]]
    assert guider["class_type"] == "PreciseEdit_FusedInstructGuider"
    assert kinds[guider["inputs"]["beta"][0]] == "PreciseEdit_ActionClassifier" and guider["inputs"]["beta"][1] == 1
    assert kinds[guider["inputs"]["model"][0]] == "PreciseEdit_InstructionLocator"
    assert kinds[guider["inputs"]["magicbrush"][0]] == "UNETLoader"

    images = saved(comfy_server, with_quadrant_segments(prompt))
    original, composite = images["zone_local_edit_original"], images["zone_local_edit"]
    outside = images["zone_local_edit_mask"][..., 0] == 0
    assert composite.shape == (64, 64, 3) and outside.any()
    assert (composite[outside] == original[outside]).all()


def test_three_turns_keep_every_pixel_outside_the_turns_masks(comfy_server):
    prompt = prompt_of(comfy_server, "zone_multi_turn.json")
    smoothers = sorted(
        (node_id for node_id, node in prompt.items() if node["class_type"] == "PreciseEdit_FFTEdgeSmoother"), key=int
    )
    assert len(smoothers) == 3
    assert prompt[prompt[smoothers[0]]["inputs"]["original"][0]]["class_type"] == "ImageScale"
    for before, after in zip(smoothers, smoothers[1:], strict=False):
        assert prompt[after]["inputs"]["original"] == [before, 1]  # each turn edits the previous composite
    guiders = [n for n in prompt.values() if n["class_type"] == "PreciseEdit_FusedInstructGuider"]
    classifiers = [prompt[guider["inputs"]["beta"][0]] for guider in guiders]
    assert all(c["class_type"] == "PreciseEdit_ActionClassifier" for c in classifiers)  # β from the action
    texts = [prompt[c["inputs"]["instruction"][0]]["inputs"]["value"] for c in classifiers]
    assert len(texts) == 3 and sum(text.startswith("remove") for text in texts) == 1

    images = saved(comfy_server, with_quadrant_segments(prompt))
    original = images["zone_multi_turn_original"]
    outside = np.ones(original.shape[:2], dtype=bool)
    for turn in (1, 2, 3):
        outside &= images[f"zone_multi_turn_{turn}_mask"][..., 0] == 0
    final = images["zone_multi_turn_3"]
    assert final.shape == original.shape == (64, 64, 3) and outside.any()
    assert (final[outside] == original[outside]).all()
