"""The capture effect: a recorder of the targeted prompts' cross-attention probabilities into an AttentionStore."""

from dataclasses import dataclass

import torch

from ...core.attention.attention_store import AttentionStore
from .attention_effect import (
    NONE,
    AttentionEffect,
    ChangedColumns,
    EffectContext,
    PromptTarget,
    StepRange,
    context_repetitions,
)


@dataclass(frozen=True, eq=False, kw_only=True)
class AttentionCapture(AttentionEffect):
    """Record the probabilities of the targeted prompts' rows, as the effects before it left them, into ``store``
    (per layer, averaged over ``heads``, all when None; the columns of a repeated context folded onto the prompt's
    ``context_length`` tokens). Only reads; the store is cleared when a sampling run begins."""

    store: AttentionStore
    context_length: int
    heads: tuple[int, ...] | None
    steps: StepRange
    target: PromptTarget

    def begin_run(self) -> None:
        self.store.reset()

    def apply(self, probabilities: torch.Tensor, context: EffectContext) -> tuple[torch.Tensor, ChangedColumns]:
        probs = probabilities.index_select(0, context.selected_rows())
        repeats = context_repetitions(self.context_length, probs.shape[-1])
        if repeats > 1:
            probs = probs.view(*probs.shape[:-1], repeats, self.context_length).sum(-2)
        self.store.add(context.layer.name, probs, context.grid, self.heads)
        return probabilities, NONE
