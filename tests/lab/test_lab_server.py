"""``make demo``'s lab half as a user's ComfyUI runs it: every lab workflow on a real server that loads the pack from
its folder (under a module name made from its path, not ``precise_edit``) and the lab's loaders as a second pack."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.server]


def test_every_lab_workflow_runs_on_a_server_that_loads_the_pack_from_its_folder(tmp_path: Path) -> None:
    from harness.run_workflows import run_workflow
    from harness.server import ComfyServer
    from lab import demo

    models_dir = tmp_path / "models"
    demo.prepare(models_dir=models_dir)
    failures, image_counts = {}, {}
    with ComfyServer(tmp_path / "comfy", models_dir, extra_node_packs=demo.node_packs()) as server:
        object_info = server.object_info()
        for path in demo.workflows(server.base_dir / "input"):
            result = run_workflow(server, path, object_info, tmp_path / "output", full_size=True)
            if not result.ok:
                failures[path.stem] = result.error
            image_counts[path.stem] = len(result.images)

    assert failures == {}
    # Every workflow saves its before/after images; the action classifier's shows its verdicts as text only.
    assert [name for name, count in image_counts.items() if count == 0] == ["lab_zone_action_classifier"]
