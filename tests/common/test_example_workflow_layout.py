"""The example workflows read at a glance: no overlapping nodes, a group per stage, a Markdown note, a download entry
for every model file the missing-models dialog can offer, links left to right, a readable opening view; and the
sizes they store are at least what the frontend gives the nodes (so the overlap check measures what is drawn)."""

import copy
import json

import pytest

from harness.example_models import DOWNLOADS, MADE_BY_THE_PACK, model_files
from harness.ui_workflow import example_workflows
from harness.workflow_layout import NODE_GAP, PLANS, layout_problems

WORKFLOWS = example_workflows()
# LiteGraph's computeSize: 20 px per socket row and at least 20 px + 4 between per widget (it adds a little more).
SLOT_HEIGHT, WIDGET_HEIGHT, WIDGET_GAP = 20, 20, 4
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def test_the_example_workflows_are_found():
    assert len(WORKFLOWS) >= 9
    assert {path.stem for path in WORKFLOWS} <= set(PLANS), "a workflow without a layout plan"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.stem)
def test_the_workflow_reads_well(path):
    assert layout_problems(json.loads(path.read_text())) == []


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.stem)
def test_every_named_model_file_can_be_downloaded_or_is_made_by_the_pack(path):
    workflow = json.loads(path.read_text())
    notes = " ".join(node["widgets_values"][0] for node in workflow["nodes"] if node["type"] == "MarkdownNote")
    for _, name, folder in model_files(workflow):
        if name in MADE_BY_THE_PACK:
            assert MADE_BY_THE_PACK[name] in notes and name in notes, f"the note does not say how {name} is made"
            continue
        download = DOWNLOADS[name]
        assert download.directory == folder
        assert download.url.startswith("https://huggingface.co/")  # the only host the dialog downloads from
        assert name in notes and f"models/{folder}" in notes, f"the note does not say where {name} goes"


def good_workflow():
    workflow = json.loads(WORKFLOWS[0].read_text())
    assert layout_problems(workflow) == []
    return workflow


def test_the_check_finds_overlapping_nodes_title_bars_included():
    workflow = good_workflow()
    a = next(node for node in workflow["nodes"] if node["type"] not in ("MarkdownNote", "Reroute"))
    b = {**copy.deepcopy(a), "id": 9999}
    workflow["nodes"].append(b)
    right = max(node["pos"][0] + node["size"][0] for node in workflow["nodes"]) + 500
    # b's title bar (30 px above its pos) reaches 1 px into a's body
    b["pos"] = [a["pos"][0], a["pos"][1] + a["size"][1] + 30 - 1]
    assert "#9999 " in " ".join(problem for problem in layout_problems(workflow) if "overlap" in problem)
    b["pos"] = [right, a["pos"][1]]
    assert "#9999 " not in " ".join(problem for problem in layout_problems(workflow) if "overlap" in problem)
    b["pos"] = [right, a["pos"][1] + a["size"][1] + NODE_GAP]
    assert all("overlap" not in problem for problem in layout_problems(workflow))


def test_the_check_finds_a_workflow_without_groups_note_or_download_entry():
    workflow = good_workflow()
    broken = copy.deepcopy(workflow)
    broken["groups"] = []
    assert "no group" in layout_problems(broken)
    broken = copy.deepcopy(workflow)
    broken["nodes"] = [node for node in broken["nodes"] if node["type"] != "MarkdownNote"]
    assert "no MarkdownNote" in layout_problems(broken)
    broken = copy.deepcopy(workflow)
    broken.pop("models")
    assert any("top-level models" in problem for problem in layout_problems(broken))
    broken = copy.deepcopy(workflow)
    broken["extra"]["ds"] = {"scale": 0.5, "offset": [0, 0]}
    assert any("zoom" in problem for problem in layout_problems(broken))


def rendered_height_lower_bound(node, object_info):
    """A height LiteGraph's computeSize gives at least: socket rows, then a row per widget not linked (two for a
    seed's control_after_generate)."""
    inputs = {**object_info["input"].get("required", {}), **object_info["input"].get("optional", {})}
    linked = {slot["name"] for slot in node.get("inputs") or [] if slot.get("link") is not None}
    widgets = 0
    for name, spec in inputs.items():
        kind = spec[0] if isinstance(spec[0], str) else "COMBO"
        if kind in WIDGET_TYPES and name not in linked:
            widgets += 2 if (spec[1] if len(spec) > 1 else {}).get("control_after_generate") else 1
    sockets = max(len([s for s in node.get("inputs") or [] if not s.get("widget")]), len(node.get("outputs") or []))
    body = max(sockets, 1) * SLOT_HEIGHT
    return body + widgets * (WIDGET_HEIGHT + WIDGET_GAP)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.stem)
def test_stored_node_sizes_are_at_least_what_the_frontend_draws(comfy, path):
    from harness.workflow_format import object_info_inprocess

    object_info = object_info_inprocess()
    short = []
    for node in json.loads(path.read_text())["nodes"]:
        if node["type"] not in object_info:
            continue
        need = rendered_height_lower_bound(node, object_info[node["type"]])
        if node["size"][1] < need:
            short.append(f"#{node['id']} {node['type']}: {node['size'][1]} px < {need} px")
    assert short == []
