"""``make demo``'s lab half as a user's ComfyUI runs it: every lab workflow on a real server that loads the pack from
its folder (under a module name made from its path, not ``precise_edit``) and the lab's loaders as a second pack."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.server]


def test_every_lab_workflow_runs_on_a_server_that_loads_the_pack_from_its_folder(tmp_path: Path) -> None:
    from harness.run_workflows import run_all

    results, lab_names = run_all([], tmp_path)

    assert {result.name for result in results} == lab_names
    assert {result.name: result.error for result in results if not result.ok} == {}
    # Every workflow saves its before/after images; the action classifier's shows its verdicts as text only.
    assert [result.name for result in results if not result.images] == ["lab_zone_action_classifier"]
