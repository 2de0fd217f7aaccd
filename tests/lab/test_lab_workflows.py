"""The lab's UI workflows are the graphs its claims measure: each converts back to exactly that API prompt."""

from __future__ import annotations

import json

import pytest

from harness.comfy_env import ComfyDirs
from lab.workflows import build

pytestmark = pytest.mark.lab


def test_each_workflow_is_its_claims_graph(lab_comfy: ComfyDirs) -> None:
    from harness.workflow_format import object_info_inprocess, ui_to_api

    object_info = object_info_inprocess()
    graphs = build.claim_graphs()
    assert sorted(path.stem for path in build.FOLDER.glob("*.json")) == sorted(graphs)
    for stem, graph in graphs.items():
        saved = json.loads((build.FOLDER / f"{stem}.json").read_text())
        assert ui_to_api(saved, object_info) == graph.nodes, f"{stem}.json is stale: run python -m lab.workflows.build"
    assert (build.INPUT / "lab_nti_900.png").is_file()
