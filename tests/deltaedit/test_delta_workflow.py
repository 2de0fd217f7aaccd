"""example_workflows/deltaedit_unclip.json on the server: DeltaEdit through the stock SD2.1 unCLIP-L path.

The stand-ins are the tiny unCLIP-L checkpoint (full-size SD2 text encoder and ViT-L/14 vision, random weights) and a
tiny joint CLIP. The workflow trains a Delta Mapper on ``input/deltaedit_faces`` in the graph and samples the
unedited and the edited embedding with the same seed, so the pair of saved images shows what the edit changed.
"""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.errors import PromptFailed
from harness.stand_in_scale import shrink_for_stand_ins
from harness.workflow_format import ui_to_api

WORKFLOW = Path(__file__).resolve().parents[2] / "example_workflows" / "deltaedit_unclip.json"


def node_of(prompt: dict, class_type: str) -> dict:
    matches = [node for node in prompt.values() if node["class_type"] == class_type]
    assert len(matches) == 1, f"{len(matches)} {class_type} nodes"
    return matches[0]


@pytest.fixture(scope="module")
def prompt(comfy_server) -> dict:
    return ui_to_api(json.loads(WORKFLOW.read_text()), comfy_server.object_info())


def run(server, prompt: dict) -> dict[str, np.ndarray]:
    """Queue the shrunk prompt; return its saved images by filename prefix."""
    entry = server.wait(server.queue(shrink_for_stand_ins(prompt)))
    images = {}
    for path in server.output_images(entry):
        prefix = path.name.rsplit("_", 2)[0]
        images[prefix] = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
    assert set(images) == {"deltaedit_unedited", "deltaedit_smile"}, sorted(images)
    return images


def with_edit(prompt: dict, **inputs) -> dict:
    changed = copy.deepcopy(prompt)
    node_of(changed, "PreciseEdit_ApplyDeltaEdit")["inputs"].update(inputs)
    return changed


def test_the_workflow_is_the_stock_unclip_path_with_a_delta_edit_in_the_middle(prompt):
    loader = node_of(prompt, "unCLIPCheckpointLoader")
    assert loader["inputs"]["ckpt_name"] == "sd21-unclip-l.ckpt"
    direction = node_of(prompt, "PreciseEdit_CLIPDeltaDirection")["inputs"]
    assert (direction["source_text"], direction["target_text"]) == ("face", "face with smile")
    trainer = node_of(prompt, "PreciseEdit_DeltaMapperTrainer")["inputs"]
    assert trainer["folder"] == "deltaedit_faces" and trainer["steps"] == 2000
    edit = node_of(prompt, "PreciseEdit_ApplyDeltaEdit")["inputs"]
    assert edit["method"] == "delta_mapper" and edit["strength"] == 1.0 and edit["threshold"] == 0.03
    assert (edit["threshold_mode"], edit["relative_threshold"]) == ("relative", 0.25)
    assert prompt[edit["clip_vision_output"][0]]["class_type"] == "CLIPVisionEncode"
    sources = sorted(
        prompt[node["inputs"]["clip_vision_output"][0]]["class_type"]
        for node in prompt.values()
        if node["class_type"] == "unCLIPConditioning"
    )
    assert sources == ["CLIPVisionEncode", "PreciseEdit_ApplyDeltaEdit"]
    samplers = [node["inputs"] for node in prompt.values() if node["class_type"] == "KSampler"]
    assert len(samplers) == 2 and samplers[0]["seed"] == samplers[1]["seed"]


def test_strength_zero_reproduces_the_unedited_sample_and_the_edit_changes_it(comfy_server, prompt):
    mappers = Path(comfy_server.models_dir) / "delta_mappers" / "deltaedit"
    still = run(comfy_server, with_edit(prompt, strength=0.0))
    assert np.array_equal(still["deltaedit_smile"], still["deltaedit_unedited"])
    saved = sorted(mappers.glob("faces_*.safetensors"))
    assert saved, f"the trainer saved no mapper in {mappers}"

    edited = run(comfy_server, prompt)
    assert np.array_equal(edited["deltaedit_unedited"], still["deltaedit_unedited"])
    assert np.abs(edited["deltaedit_smile"] - edited["deltaedit_unedited"]).max() > 0
    # the mapper was trained once: changing only the edit's inputs re-ran nothing upstream of it
    assert sorted(mappers.glob("faces_*.safetensors")) == saved


def test_an_absolute_threshold_above_every_relevance_leaves_the_sample_unedited(comfy_server, prompt):
    gated = run(comfy_server, with_edit(prompt, threshold_mode="absolute", threshold=1.0))
    assert np.array_equal(gated["deltaedit_smile"], gated["deltaedit_unedited"])


def test_the_straightforward_baseline_is_refused_across_two_clip_spaces(comfy_server, prompt):
    with pytest.raises(PromptFailed, match="straightforward edit adds the 32-d DeltaSpace direction"):
        run(comfy_server, with_edit(prompt, method="straightforward"))
