"""The S2Edit example workflows invert (and so edit) at a guidance scale inside the paper's best identity/edit
trade-off, w ∈ [3.5, 5.5] (S2Edit, Fig. 9): the edit replays at the guidance its inversion was made with."""

import pytest

from harness.ui_workflow import example_workflows, ui_prompt

WORKFLOWS = [path for path in example_workflows() if path.stem.startswith("s2edit_")]
PAPER_RANGE = (3.5, 5.5)


def test_the_s2edit_workflows_are_found():
    assert {"s2edit_compositional.json", "s2edit_identity_edit.json"} <= {path.name for path in WORKFLOWS}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.stem)
def test_s2edit_workflows_edit_at_a_guidance_from_the_paper_range(comfy, path):
    from harness.workflow_format import object_info_inprocess

    prompt = ui_prompt(path, object_info_inprocess())
    inversions = {
        node_id: node for node_id, node in prompt.items() if node["class_type"] == "PreciseEdit_NullTextInversion"
    }
    edits = [node for node in prompt.values() if node["class_type"] == "PreciseEdit_PromptToPromptEdit"]
    assert inversions and edits
    for node in inversions.values():
        assert PAPER_RANGE[0] <= node["inputs"]["guidance"] <= PAPER_RANGE[1], node["inputs"]
    for edit in edits:
        assert edit["inputs"]["inversion"][0] in inversions
