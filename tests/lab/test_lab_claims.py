"""Each paper's central claim, measured on the lab's trained models by the pack's own nodes (run by node id through
the harness executor). A test fails when its effect disappears; the message carries every measured number.
The first run trains the lab models (minutes on 2 cores, then cached in .cache/lab)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from harness.comfy_env import ComfyDirs
from lab.checks import Check

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def _assert_all_hold(checks: list[Check]) -> None:
    report = "\n".join(check.message() for check in checks)
    assert all(check.holds for check in checks), report


def _measured(measure: Callable[[], Any], checks: Callable[[Any], list[Check]]) -> list[Check]:
    return checks(measure())


def test_caption_accuracy_on_held_out_captions(lab_comfy: ComfyDirs) -> None:
    from lab.claims import caption_accuracy

    _assert_all_hold(_measured(caption_accuracy.measure, caption_accuracy.checks))


def test_attention_to_mask_finds_each_object(lab_comfy: ComfyDirs) -> None:
    from lab.claims import attention_mask

    _assert_all_hold(_measured(attention_mask.measure, attention_mask.checks))


def test_prompt_to_prompt_swap_reweight_refine(lab_comfy: ComfyDirs) -> None:
    from lab.claims import prompt_to_prompt

    _assert_all_hold(_measured(prompt_to_prompt.measure, prompt_to_prompt.checks))


def test_null_text_inversion_reconstructs_and_edits(lab_comfy: ComfyDirs) -> None:
    from lab.claims import null_text_inversion

    _assert_all_hold(_measured(null_text_inversion.measure, null_text_inversion.checks))
