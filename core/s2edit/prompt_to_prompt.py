"""Prompt-to-prompt attention control (Hertz et al. 2022; ``AttentionReplace``, ``AttentionRefine``,
``AttentionReweight`` and their step schedules in the official ``prompt-to-prompt`` code).

Source and target prompt are sampled in one batch from the same noise. In every cross-attention layer the
target's probabilities A_tgt (``[heads, queries, L]``) are rebuilt from the source's A_src with the token mapping
of ``core.s2edit.token_alignment`` and an equaliser e ∈ R^L (1 except for re-weighted words):

    replace:  E = (A_src M) · e                                  (M: the L×L replacement matrix)
    refine:   E = (α ⊙ A_src[:, m] + (1 − α) ⊙ A_tgt) · e          (m, α: the refinement alignment)
    A*_tgt[:, j] = c_{i,j} · E[:, j] + (1 − c_{i,j}) · A_tgt[:, j],

with the per-step, per-token alpha of the official ``get_time_words_attention_alpha`` (its table has N + 1 rows
for N sampling steps, so fractions are scaled by N + 1):

    c_{i,j} = 1  if ⌊s_j · (N + 1)⌋ ≤ i < ⌊e_j · (N + 1)⌋,  else 0,

where (s_j, e_j) is the cross-replace window of the word that token j belongs to when that word has its own
window, and the default window otherwise (a single fraction f is the window (0, f)). Re-weighting therefore acts
inside each token's window only, as in the official code. In the self-attention layers with at most 32² tokens at
512 px the target's self-attention probabilities are the source's at steps i ∈ [0, ⌊f_s · N⌋)
(``num_self_replace``). The source itself is never changed, and only the conditional branch is edited (the
official code edits ``attn[h // 2:]``).
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

WEIGHT_SYNTAX = '"word:weight, other word:weight", e.g. "tiger:2.0, background:0.5"'


Window = tuple[float, float]
"""A cross-replace window (start, end): fractions of the sampling steps, 0 ≤ start ≤ end ≤ 1."""


def cross_replace_steps(steps: int, window: float | Window, name: str = "cross_replace") -> range:
    """Sampling steps i (0 = the noisiest) whose cross-attention is rebuilt: [⌊s · (N + 1)⌋, ⌊e · (N + 1)⌋) within
    [0, N); a single fraction f is the window (0, f)."""
    start, end = (0.0, window) if isinstance(window, int | float) else window
    _check_fraction(start, name)
    _check_fraction(end, name)
    if start > end:
        raise ValueError(f"{name}: the window starts at {start}, after its end {end}")
    return range(min(int(start * (steps + 1)), steps), min(int(end * (steps + 1)), steps))


def cross_replace_alpha(
    steps: int, length: int, default: float | Window, words: Sequence[tuple[Sequence[int], Window]] = ()
) -> torch.Tensor:
    """The alpha table c ``[N, L]`` (bool): ``default`` for every token, then each word's window on its token
    positions, later words winning where they share tokens (``get_time_words_attention_alpha``)."""
    alpha = torch.zeros(steps, length, dtype=torch.bool)
    window = cross_replace_steps(steps, default)
    alpha[window.start : window.stop] = True
    for positions, word_window in words:
        window = cross_replace_steps(steps, word_window, "word window")
        columns = list(positions)
        alpha[:, columns] = False
        alpha[window.start : window.stop, columns] = True
    return alpha


def alpha_runs(alpha: torch.Tensor) -> list[tuple[range, torch.Tensor | None]]:
    """Maximal runs of consecutive steps with the same alpha row that replaces something: (steps, row), the row
    None where it replaces every token. Steps that replace nothing are left out."""
    runs: list[tuple[range, torch.Tensor | None]] = []
    start = 0
    for step in range(1, alpha.shape[0] + 1):
        if step < alpha.shape[0] and torch.equal(alpha[step], alpha[start]):
            continue
        row = alpha[start]
        if row.any():
            runs.append((range(start, step), None if row.all() else row.clone()))
        start = step
    return runs


def self_replace_steps(steps: int, fraction: float) -> range:
    """Sampling steps i whose self-attention is the source's: [0, ⌊f · N⌋)."""
    _check_fraction(fraction, "self_replace")
    return range(int(fraction * steps))


def _check_fraction(fraction: float, name: str) -> None:
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"{name}: a fraction of the sampling steps between 0 and 1 is expected, got {fraction}")


def word_entries(text: str, name: str, syntax: str) -> list[tuple[str, str, str]]:
    """The comma-separated ``word: value`` entries of the input ``name`` as (entry, word, value), stripped; empty
    entries are skipped, and an entry without a word or a value is an error that shows ``syntax``."""
    entries = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        word, colon, value = entry.rpartition(":")
        if not colon or not word.strip() or not value.strip():
            raise ValueError(f"{name}: cannot read {entry!r}; expected {syntax}")
        entries.append((entry, word.strip(), value.strip()))
    return entries


def parse_word_weights(text: str) -> dict[str, float]:
    """``"word:2.0, other word:0.5"`` → ``{"word": 2.0, "other word": 0.5}`` (empty text: no re-weighting)."""
    weights: dict[str, float] = {}
    for entry, word, value in word_entries(text, "word_weights", WEIGHT_SYNTAX):
        try:
            weight = float(value)
        except ValueError:
            weight = None
        if weight is None or weight != weight:
            raise ValueError(f"word_weights: cannot read {entry!r}; expected {WEIGHT_SYNTAX}")
        if weight < 0:
            raise ValueError(f"word_weights: the weight of {word!r} is {weight}; attention weights must be ≥ 0")
        weights[word] = weight
    return weights


def equalizer(length: int, weights: dict[int, float]) -> torch.Tensor:
    """e ∈ R^L: the weight of each listed token position, 1 elsewhere (``get_equalizer``)."""
    values = torch.ones(length)
    for position, weight in weights.items():
        values[position] = weight
    return values


def replace_probabilities(source: torch.Tensor, mapper: torch.Tensor) -> torch.Tensor:
    """``A_src M``: ``[..., Q, L] × [L, L] → [..., Q, L]``."""
    return torch.matmul(source, mapper.to(source))


def refine_probabilities(
    source: torch.Tensor, target: torch.Tensor, mapper: torch.Tensor, alphas: torch.Tensor
) -> torch.Tensor:
    """``α ⊙ A_src[..., m] + (1 − α) ⊙ A_tgt``."""
    alphas = alphas.to(source)
    return source.index_select(-1, mapper) * alphas + target * (1.0 - alphas)


@dataclass(eq=False)
class CrossAttentionEdit:
    """The cross-attention edit of prompt-to-prompt steps that share one alpha row: ``probs[1:]`` rebuilt from
    ``probs[0]`` in the columns j with c_j = 1, kept in the others.

    ``mapper`` is M (float ``[L, L]``) for replacement, or m (long ``[L]``) with ``alphas`` for refinement;
    ``weights`` is the equaliser e, or None for no re-weighting; ``columns`` is the alpha row c (bool ``[L]``), or
    None where every column is rebuilt.
    """

    mapper: torch.Tensor
    alphas: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    columns: torch.Tensor | None = None
    _on_device: dict = field(default_factory=dict, repr=False, init=False)

    @property
    def length(self) -> int:
        return self.mapper.shape[-1]

    def _tensors(self, device: torch.device) -> tuple[torch.Tensor | None, ...]:
        if device not in self._on_device:
            # Made outside inference mode so that a later pass that records gradients can save them.
            with torch.inference_mode(False):
                self._on_device[device] = tuple(
                    None if t is None else t.to(device) for t in (self.mapper, self.alphas, self.weights, self.columns)
                )
        return self._on_device[device]

    def __call__(self, probs: torch.Tensor) -> torch.Tensor:
        """``probs``: ``[1 + n, H, Q, L]`` of the source then n targets; returns the edited probabilities."""
        if probs.shape[-1] != self.length:
            raise ValueError(
                f"cross-attention has {probs.shape[-1]} context tokens, the prompts were aligned for {self.length}"
            )
        mapper, alphas, weights, columns = self._tensors(probs.device)
        source, targets = probs[:1], probs[1:]
        if alphas is None:
            edited = replace_probabilities(source, mapper).expand_as(targets)
        else:
            edited = refine_probabilities(source, targets, mapper, alphas)
        if weights is not None:
            edited = edited * weights.to(edited)
        if columns is not None:
            edited = torch.where(columns, edited, targets)
        return torch.cat([source, edited])
