"""The batch edit effect: a targeted prompt's images rebuilt from its first image's probabilities (prompt-to-prompt)."""

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .attention_effect import ALL, AttentionEffect, ChangedColumns, EffectContext, PromptTarget, StepRange


@dataclass(frozen=True, eq=False)
class PromptBatchEdit(AttentionEffect):
    """Rebuild the probabilities of a targeted prompt's images from those of its first image.

    ``edit`` maps ``[images, H, Tq, Tk]`` (the images of one targeted batch chunk, in batch order) to the edited
    probabilities of the same shape; prompt-to-prompt puts the source first and the targets after it.
    """

    edit: Callable[[torch.Tensor], torch.Tensor]
    steps: StepRange
    target: PromptTarget

    def apply(self, probabilities: torch.Tensor, context: EffectContext) -> tuple[torch.Tensor, ChangedColumns]:
        for chunk in context.chunks:
            rows = context.chunk_rows(chunk)
            probabilities = probabilities.index_copy(0, rows, self.edit(probabilities.index_select(0, rows)))
        return probabilities, ALL
