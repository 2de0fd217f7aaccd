"""The source prompt an inversion was made under, kept in PE_INVERSION so that replays can check theirs.

Null-text inversion reproduces the image only under the conditioning it was optimised for: another wording, a CLIP
without the identity's text-encoder LoRA or an unexpanded [I] silently break "source row = reconstruction". The
inversion keeps its conditioning (a few hundred kB), its text when the node was given it, and the identity token's
mask it applied; a replay whose source conditioning differs by more than ``TOLERANCE`` of its largest magnitude is
refused with an error naming both prompts.
"""

from dataclasses import dataclass

import torch

from .identity_token_mask import IdentityTokenMask

TOLERANCE = 1e-3
"""Largest |difference| allowed between two encodings of the same prompt, relative to the embedding's largest
magnitude: room for another device or kernel, far below what a changed word or a missing LoRA makes."""


@dataclass(frozen=True)
class InvertedPrompt:
    """``conditioning``: the positive CONDITIONING the inversion ran under, tagged with ``tag`` (effects that must
    act on it in a replay target that tag). ``text``: its caption, "" when the node was not given it.
    ``identity_mask``: [I]'s spatial control during the inversion, None when [I] was not masked."""

    conditioning: list
    tag: str
    text: str = ""
    identity_mask: IdentityTokenMask | None = None

    def describe(self) -> str:
        return repr(self.text) if self.text else "(its text was not given: connect source_text to the inversion)"


def _tensors(conditioning: list) -> list[torch.Tensor]:
    tensors = []
    for embedding, options in conditioning:
        tensors.append(embedding)
        if options.get("pooled_output") is not None:
            tensors.append(options["pooled_output"])
    return tensors


def conditioning_difference(inverted: list, conditioning: list) -> str:
    """Why ``conditioning`` is not the inverted one ("" when it is, within ``TOLERANCE``)."""
    if len(inverted) != len(conditioning):
        return f"it has {len(conditioning)} conditioning entries, the inversion's has {len(inverted)}"
    for old, new in zip(_tensors(inverted), _tensors(conditioning), strict=False):
        if old.shape != new.shape:
            return f"its embedding is {tuple(new.shape)}, the inversion's {tuple(old.shape)}"
        old, new = old.detach().float().cpu(), new.detach().float().cpu()
        scale = float(old.abs().max()) or 1.0
        difference = float((old - new).abs().max()) / scale
        if not difference <= TOLERANCE:
            return f"its embedding differs by up to {difference:.2g} of the largest value"
    if len(_tensors(inverted)) != len(_tensors(conditioning)):
        return "one has a pooled output and the other not"
    return ""


def check_inverted_prompt(inverted: InvertedPrompt, conditioning: list, name: str, text: str = "") -> None:
    """Refuse a replay whose source ``conditioning`` (from input ``name``, caption ``text``) is not the inverted one."""
    reason = conditioning_difference(inverted.conditioning, conditioning)
    if reason:
        given = f"{name} {text!r}" if text else name
        raise ValueError(
            f"{given} does not encode to the prompt the inversion was made under, {inverted.describe()}: {reason}. "
            "The edit reproduces the source only under the inverted prompt: give the same caption, encoded with "
            "the same CLIP (with the identity's LoRA, placeholders expanded), or invert again"
        )
