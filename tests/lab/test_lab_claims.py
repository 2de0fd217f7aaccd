"""Each paper's central claim, measured on the lab's trained models by the pack's own nodes (run by node id through
the harness executor). A test fails when its effect disappears; the message carries every measured number.
The first run trains the lab models (minutes on 2 cores, then cached in .cache/lab).

Some rows do not hold yet at this scale. ``lab.open_rows.OPEN`` lists them with what was measured and why; they are
tested by a strict xfail: the run stays green while they fail, and turns red the day one of them holds (the settled
test names it), so the list is kept honest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from harness.comfy_env import ComfyDirs
from lab.checks import Check
from lab.open_rows import OPEN, is_open

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def _measured(measure: Callable[[], Any], checks: Callable[[Any], list[Check]]) -> list[Check]:
    return checks(measure())


def _assert_settled_rows_hold(checks: list[Check]) -> None:
    """Every row that ``OPEN`` does not list holds, and every row it lists still fails (a listed row that holds now
    would read "yes" in the report under an explanation of why it does not)."""
    report = "\n".join(check.message() for check in checks)
    assert all(check.holds for check in checks if not is_open(check)), report
    stale = [check.message() for check in checks if is_open(check) and check.holds]
    assert not stale, "listed in lab/open_rows.py but holds now: take it off the list\n" + "\n".join(stale)


def _assert_open_rows_hold(checks: list[Check]) -> None:
    open_rows = [check for check in checks if is_open(check)]
    assert open_rows, "no open row measured: update OPEN"
    assert all(check.holds for check in open_rows), "\n".join(check.message() for check in open_rows)


@pytest.fixture(scope="module")
def caption_checks(lab_comfy: ComfyDirs) -> list[Check]:
    from lab.claims import caption_accuracy

    return _measured(caption_accuracy.measure, caption_accuracy.checks)


@pytest.fixture(scope="module")
def prompt_to_prompt_checks(lab_comfy: ComfyDirs) -> list[Check]:
    from lab.claims import prompt_to_prompt

    return _measured(prompt_to_prompt.measure, prompt_to_prompt.checks)


def test_caption_accuracy_on_held_out_captions(caption_checks: list[Check]) -> None:
    _assert_settled_rows_hold(caption_checks)


@pytest.mark.xfail(strict=True, reason=OPEN["caption accuracy (held-out)"][1])
def test_caption_accuracy_binds_position_and_shape(caption_checks: list[Check]) -> None:
    _assert_open_rows_hold(caption_checks)


def test_attention_to_mask_finds_each_object(lab_comfy: ComfyDirs) -> None:
    from lab.claims import attention_mask

    _assert_settled_rows_hold(_measured(attention_mask.measure, attention_mask.checks))


def test_prompt_to_prompt_keeps_the_layout_reweights_and_refines(prompt_to_prompt_checks: list[Check]) -> None:
    _assert_settled_rows_hold(prompt_to_prompt_checks)


@pytest.mark.xfail(strict=True, reason=OPEN["p2p word swap"][1])
def test_prompt_to_prompt_word_swap_puts_the_new_colour_in_place(prompt_to_prompt_checks: list[Check]) -> None:
    _assert_open_rows_hold(prompt_to_prompt_checks)


def test_null_text_inversion_reconstructs_and_edits(lab_comfy: ComfyDirs) -> None:
    from lab.claims import null_text_inversion

    _assert_settled_rows_hold(_measured(null_text_inversion.measure, null_text_inversion.checks))


@pytest.fixture(scope="module")
def zone_checks(lab_comfy: ComfyDirs) -> list[Check]:
    from lab.claims import zone_local_edit

    return _measured(zone_local_edit.measure, zone_local_edit.checks)


def test_zone_locates_the_edit_and_composites_it_keeping_every_other_pixel(zone_checks: list[Check]) -> None:
    _assert_settled_rows_hold(zone_checks)


@pytest.mark.xfail(
    strict=True,
    reason="; ".join(
        OPEN[claim][1] for claim in ("ZONE locator", "ZONE edit (attention M_b)", "ZONE edit (difference M_b)")
    ),
)
def test_zone_attention_finds_the_edit_and_every_composite_keeps_it(zone_checks: list[Check]) -> None:
    _assert_open_rows_hold(zone_checks)


@pytest.fixture(scope="module")
def zone_fused_remove_checks(lab_comfy: ComfyDirs) -> list[Check]:
    from lab.claims import zone_fused_remove

    return _measured(zone_fused_remove.measure, zone_fused_remove.checks)


@pytest.mark.xfail(strict=True, reason=OPEN["ZONE fused guidance"][1])
def test_zone_fused_guidance_removes_more_reliably_than_instruct_pix2pix(zone_fused_remove_checks: list[Check]) -> None:
    _assert_open_rows_hold(zone_fused_remove_checks)


@pytest.fixture(scope="module")
def zone_multi_turn_checks(lab_comfy: ComfyDirs) -> list[Check]:
    from lab.claims import zone_multi_turn

    return _measured(zone_multi_turn.measure, zone_multi_turn.checks)


def test_zone_three_turns_keep_every_pixel_outside_each_turns_mask(zone_multi_turn_checks: list[Check]) -> None:
    _assert_settled_rows_hold(zone_multi_turn_checks)


@pytest.mark.xfail(strict=True, reason=OPEN["ZONE three turns"][1])
def test_zone_three_turns_make_every_edit_and_keep_the_rest(zone_multi_turn_checks: list[Check]) -> None:
    _assert_open_rows_hold(zone_multi_turn_checks)


def test_zone_action_classifier_reads_instructions_it_never_saw(lab_comfy: ComfyDirs) -> None:
    from lab.claims import zone_action_classifier

    _assert_settled_rows_hold(_measured(zone_action_classifier.measure, zone_action_classifier.checks))


@pytest.fixture(scope="module")
def s2edit_checks(lab_comfy: ComfyDirs) -> list[Check]:
    from lab.claims import s2edit_identity

    return _measured(s2edit_identity.measure, s2edit_identity.checks)


def test_s2edit_identity_token_edit_keeps_the_identity(s2edit_checks: list[Check]) -> None:
    _assert_settled_rows_hold(s2edit_checks)


@pytest.mark.xfail(
    strict=True,
    reason="; ".join(OPEN[claim][1] for claim in ("S2Edit identity edit", "S2Edit ablation", "S2Edit compositional")),
)
def test_s2edit_edits_the_attribute_and_its_controls_beat_plain_fine_tuning(s2edit_checks: list[Check]) -> None:
    _assert_open_rows_hold(s2edit_checks)


@pytest.fixture(scope="module")
def mcdm_checks(lab_comfy: ComfyDirs) -> list[Check]:
    from lab.claims import mcdm_portrait_edit

    return _measured(mcdm_portrait_edit.measure, mcdm_portrait_edit.checks)


def test_mcdm_edits_held_out_portraits_with_its_own_mask_and_three_scale_guidance(mcdm_checks: list[Check]) -> None:
    _assert_settled_rows_hold(mcdm_checks)


@pytest.mark.xfail(strict=True, reason=OPEN["MCDM edit (held-out identities)"][1])
def test_mcdm_edit_keeps_the_whole_identity_of_held_out_portraits(mcdm_checks: list[Check]) -> None:
    _assert_open_rows_hold(mcdm_checks)


@pytest.fixture(scope="module")
def deltaedit_joint_checks(lab_comfy: ComfyDirs) -> list[Check]:
    from lab.claims import deltaedit_joint_clip

    return _measured(deltaedit_joint_clip.measure, deltaedit_joint_clip.checks)


def test_deltaedit_joint_encoder_retrieves_held_out_portraits(deltaedit_joint_checks: list[Check]) -> None:
    _assert_settled_rows_hold(deltaedit_joint_checks)


@pytest.mark.xfail(strict=True, reason=OPEN["DeltaEdit joint encoder"][1])
def test_deltaedit_joint_encoder_tells_every_attribute_apart(deltaedit_joint_checks: list[Check]) -> None:
    _assert_open_rows_hold(deltaedit_joint_checks)


@pytest.fixture(scope="module")
def deltaedit_checks(lab_comfy: ComfyDirs) -> list[Check]:
    from lab.claims import deltaedit_text_edit

    return _measured(deltaedit_text_edit.measure, deltaedit_text_edit.checks)


def test_deltaedit_mapper_trained_on_images_follows_text_directions(deltaedit_checks: list[Check]) -> None:
    _assert_settled_rows_hold(deltaedit_checks)


@pytest.mark.xfail(
    strict=True,
    reason="; ".join(
        OPEN[claim][1]
        for claim in ("DeltaEdit unCLIP reconstruction", "DeltaEdit disentanglement", "DeltaEdit relevance threshold")
        if claim in OPEN
    ),
)
def test_deltaedit_every_edit_applies_and_keeps_the_rest(deltaedit_checks: list[Check]) -> None:
    _assert_open_rows_hold(deltaedit_checks)
