"""A measured claim's verdict: the number, what it is compared with, and whether the effect is there."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    """One row of the claims table; ``holds`` is computed from the measured numbers, never written in."""

    claim: str
    measure: str
    value: float
    reference: str
    holds: bool

    def message(self) -> str:
        verdict = "holds" if self.holds else "does NOT hold"
        return f"{self.claim}: {self.measure} = {self.value:.3f} ({self.reference}): {verdict}"
