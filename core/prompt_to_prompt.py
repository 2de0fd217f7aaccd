"""Prompt-to-prompt attention control (Hertz et al. 2022; ``AttentionReplace``, ``AttentionRefine``,
``AttentionReweight`` and their step schedules in the official ``prompt-to-prompt`` code).

Source and target prompt are sampled in one batch from the same noise. In every cross-attention layer the
target's probabilities A_tgt (``[heads, queries, L]``) are rebuilt from the source's A_src with the token mapping
of ``core.token_alignment`` and an equaliser e ∈ R^L (1 except for re-weighted words):

    replace:  E = (A_src M) · e                                  (M: the L×L replacement matrix)
    refine:   E = (α ⊙ A_src[:, m] + (1 − α) ⊙ A_tgt) · e          (m, α: the refinement alignment)
    A*_tgt = c_i · E + (1 − c_i) · A_tgt,

with c_i = 1 at the cross-replace steps i ∈ [0, ⌊f_c · (N + 1)⌋) of N sampling steps and 0 after (the official
``get_time_words_attention_alpha`` schedule has N + 1 rows), so re-weighting acts inside that window only, as in
the official code. In the self-attention layers with at most 32² tokens at 512 px the target's self-attention
probabilities are the source's at steps i ∈ [0, ⌊f_s · N⌋) (``num_self_replace``). The source itself is never
changed, and only the conditional branch is edited (the official code edits ``attn[h // 2:]``).
"""

from dataclasses import dataclass, field

import torch

WEIGHT_SYNTAX = '"word:weight, other word:weight", e.g. "tiger:2.0, background:0.5"'


def cross_replace_steps(steps: int, fraction: float) -> range:
    """Sampling steps i (0 = the noisiest) whose cross-attention is rebuilt: [0, ⌊f · (N + 1)⌋) within [0, N)."""
    _check_fraction(fraction, "cross_replace")
    return range(min(int(fraction * (steps + 1)), steps))


def self_replace_steps(steps: int, fraction: float) -> range:
    """Sampling steps i whose self-attention is the source's: [0, ⌊f · N⌋)."""
    _check_fraction(fraction, "self_replace")
    return range(int(fraction * steps))


def _check_fraction(fraction: float, name: str) -> None:
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"{name}: a fraction of the sampling steps between 0 and 1 is expected, got {fraction}")


def parse_word_weights(text: str) -> dict[str, float]:
    """``"word:2.0, other word:0.5"`` → ``{"word": 2.0, "other word": 0.5}`` (empty text: no re-weighting)."""
    weights: dict[str, float] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        word, colon, value = entry.rpartition(":")
        word = word.strip()
        try:
            weight = float(value)
        except ValueError:
            weight = None
        if not colon or not word or weight is None or weight != weight:
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


@dataclass(frozen=True, eq=False)
class CrossAttentionEdit:
    """The cross-attention edit of a prompt-to-prompt step: ``probs[1:]`` rebuilt from ``probs[0]`` (c_i = 1).

    ``mapper`` is M (float ``[L, L]``) for replacement, or m (long ``[L]``) with ``alphas`` for refinement;
    ``weights`` is the equaliser e, or None for no re-weighting.
    """

    mapper: torch.Tensor
    alphas: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    _on_device: dict = field(default_factory=dict, repr=False)

    @property
    def length(self) -> int:
        return self.mapper.shape[-1]

    def _tensors(self, device: torch.device) -> tuple[torch.Tensor | None, ...]:
        if device not in self._on_device:
            # Made outside inference mode so that a later pass that records gradients can save them.
            with torch.inference_mode(False):
                self._on_device[device] = tuple(
                    None if t is None else t.to(device) for t in (self.mapper, self.alphas, self.weights)
                )
        return self._on_device[device]

    def __call__(self, probs: torch.Tensor) -> torch.Tensor:
        """``probs``: ``[1 + n, H, Q, L]`` of the source then n targets; returns the edited probabilities."""
        if probs.shape[-1] != self.length:
            raise ValueError(
                f"cross-attention has {probs.shape[-1]} context tokens, the prompts were aligned for {self.length}"
            )
        mapper, alphas, weights = self._tensors(probs.device)
        source, targets = probs[:1], probs[1:]
        if alphas is None:
            edited = replace_probabilities(source, mapper).expand_as(targets)
        else:
            edited = refine_probabilities(source, targets, mapper, alphas)
        if weights is not None:
            edited = edited * weights.to(edited)
        return torch.cat([source, edited])

    def __deepcopy__(self, memo: dict) -> "CrossAttentionEdit":
        return self
