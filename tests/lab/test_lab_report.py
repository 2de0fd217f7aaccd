"""The claims report tells an open row (explained in lab.open_rows) from a regression, and prints the explanation."""

from __future__ import annotations

from lab import report
from lab.checks import Check
from lab.open_rows import OPEN


def _row(claim: str, measure: str, holds: bool) -> Check:
    return Check(claim, measure, 0.25, "needs more", holds)


def test_a_failing_open_row_reads_open_and_its_reason_follows_the_table() -> None:
    claim = "p2p word swap"
    failing = _row(claim, "share of edits with the new colour in place", False)
    settled = _row(claim, "IoU of the untouched object, injected", True)

    assert report.verdict(failing) == "open (see below)"
    assert report.verdict(settled) == "yes"
    reasons = report.open_reasons([failing, settled])
    assert reasons[0] == "## Why the open rows do not hold"
    assert reasons[2:] == [f"- **{claim}**: {OPEN[claim][1]}."]


def test_a_failing_settled_row_is_a_regression_and_a_holding_open_row_asks_for_the_list_to_be_updated() -> None:
    regression = _row("p2p word swap", "IoU of the untouched object, injected", False)
    now_holds = _row("p2p word swap", "share of edits with the new colour in place", True)

    assert report.verdict(regression) == "**no**"
    assert report.open_reasons([regression]) == []
    assert report.verdict(now_holds) == "yes (listed open: update lab/open_rows.py)"
