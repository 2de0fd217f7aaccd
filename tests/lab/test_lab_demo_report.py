"""``make demo``'s report: the lab's workflows are listed apart from the stand-in example workflows, as run on the
trained lab models, with their images shown at a size a person can read."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.run_workflows import LAB_IMAGE_WIDTH, WorkflowResult, write_report

pytestmark = pytest.mark.lab


def test_report_shows_the_lab_workflows_images_apart_from_the_stand_ins(tmp_path: Path) -> None:
    image = tmp_path / "lab_prompt_to_prompt" / "p2p_source_00001_.png"
    image.parent.mkdir()
    image.write_bytes(b"")
    results = [
        WorkflowResult("s2edit_identity_edit", True, 1.0, 1.0),
        WorkflowResult("lab_prompt_to_prompt", True, 2.0, 2.0, [image]),
    ]
    text = write_report(results, tmp_path, lab_names=frozenset({"lab_prompt_to_prompt"})).read_text()
    stand_ins, lab = text.split("# Lab workflows")
    assert "s2edit_identity_edit" in stand_ins and "lab_prompt_to_prompt" not in stand_ins
    assert "trained models" in lab
    assert f'<img src="lab_prompt_to_prompt/p2p_source_00001_.png" width="{LAB_IMAGE_WIDTH}"' in lab
