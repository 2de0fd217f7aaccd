"""The deltaedit_unclip example workflow on the server: DeltaEdit through the stock SD2.1 unCLIP-L path.

The stand-ins are the tiny unCLIP-L checkpoint (full-size SD2 text encoder and ViT-L/14 vision, random weights) and a
tiny joint CLIP. The workflow trains a Delta Mapper on ``input/deltaedit_faces`` in the graph and samples the
unedited and the edited embedding with the same seed, so the pair of saved images shows what the edit changed. The
workflow as written is the ``example_runs`` one (queued once per test run); the variants change the edit's inputs.
"""

import copy
from pathlib import Path

import numpy as np
import pytest

from harness.errors import PromptFailed
from harness.ui_workflow import WorkflowRun, run_prompt


def node_of(prompt: dict, class_type: str) -> dict:
    matches = [node for node in prompt.values() if node["class_type"] == class_type]
    assert len(matches) == 1, f"{len(matches)} {class_type} nodes"
    return matches[0]


@pytest.fixture(scope="module")
def prompt(example_runs) -> dict:
    return example_runs.prompt("deltaedit_unclip")


def images_of(run: WorkflowRun) -> dict[str, np.ndarray]:
    """The run's two saved images by filename prefix."""
    assert set(run.saved()) == {"deltaedit_unedited", "deltaedit_smile"}, sorted(run.saved())
    return {prefix: run.pixels(prefix).astype(np.int16) for prefix in run.saved()}


def run(server, prompt: dict) -> dict[str, np.ndarray]:
    """Queue the prompt at the stand-ins' scale; return its saved images by filename prefix."""
    return images_of(run_prompt(server, prompt))


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


def upstream_of(prompt: dict, node_id: str) -> set[str]:
    """The ids of every node whose output reaches ``node_id`` through links."""
    found, todo = set(), [node_id]
    while todo:
        for value in prompt[todo.pop()]["inputs"].values():
            if isinstance(value, list) and len(value) == 2 and value[0] not in found:
                found.add(value[0])
                todo.append(value[0])
    return found


def test_strength_zero_reproduces_the_unedited_sample_and_the_edit_changes_it(comfy_server, example_runs, prompt):
    edited = images_of(example_runs["deltaedit_unclip"])
    assert np.abs(edited["deltaedit_smile"] - edited["deltaedit_unedited"]).max() > 0
    still = run(comfy_server, with_edit(prompt, strength=0.0))
    assert np.array_equal(still["deltaedit_smile"], still["deltaedit_unedited"])
    assert np.array_equal(still["deltaedit_unedited"], edited["deltaedit_unedited"])  # the same seed and embedding

    mappers = Path(comfy_server.models_dir) / "delta_mappers" / "deltaedit"
    saved = sorted(mappers.glob("faces_*.safetensors"))
    assert saved, f"the trainer saved no mapper in {mappers}"
    half_run = run_prompt(comfy_server, with_edit(prompt, strength=0.5))
    half = images_of(half_run)
    assert not np.array_equal(half["deltaedit_smile"], half["deltaedit_unedited"])
    assert not np.array_equal(half["deltaedit_smile"], edited["deltaedit_smile"])
    # the mapper was trained once: changing only the edit's inputs re-ran nothing upstream of it
    (edit_id,) = [node_id for node_id, node in prompt.items() if node["class_type"] == "PreciseEdit_ApplyDeltaEdit"]
    assert upstream_of(prompt, edit_id) <= half_run.cached_nodes()
    assert sorted(mappers.glob("faces_*.safetensors")) == saved


def test_an_absolute_threshold_above_every_relevance_leaves_the_sample_unedited(comfy_server, prompt):
    gated = run(comfy_server, with_edit(prompt, threshold_mode="absolute", threshold=1.0))
    assert np.array_equal(gated["deltaedit_smile"], gated["deltaedit_unedited"])


def test_the_straightforward_baseline_is_refused_across_two_clip_spaces(comfy_server, prompt):
    with pytest.raises(PromptFailed, match="straightforward edit adds the 32-d DeltaSpace direction"):
        run(comfy_server, with_edit(prompt, method="straightforward"))
