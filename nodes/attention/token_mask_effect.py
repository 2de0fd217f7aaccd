"""The token mask effect: chosen tokens' cross-attention multiplied by a spatial mask (core.attention.token_mask)."""

from dataclasses import dataclass, field

import torch

from ...core.attention.token_grid import mask_to_token_grid
from ...core.attention.token_mask import mask_token_probabilities
from .attention_effect import (
    ALL,
    AttentionEffect,
    ChangedColumns,
    EffectContext,
    PromptTarget,
    StepRange,
    context_repetitions,
)


@dataclass(kw_only=True, eq=False)
class TokenMask(AttentionEffect):
    """Multiply the probabilities of ``tokens`` (positions in a prompt of ``context_length`` tokens) by ``mask``
    ``[1 or images, H, W]`` on the targeted prompts' rows: ``A*[I] = A[I] ⊙ (1 − s(1 − M))``, rows renormalised
    when asked. Changes the token columns, or every column when renormalising."""

    tokens: tuple[int, ...]
    context_length: int
    mask: torch.Tensor
    strength: float
    renormalize: bool
    steps: StepRange
    target: PromptTarget
    _row_masks: dict = field(default_factory=dict, init=False, repr=False)

    def columns(self, keys: int) -> tuple[int, ...]:
        """The masked token columns, once per repetition of the prompt in the context."""
        repeats = context_repetitions(self.context_length, keys)
        return tuple(t + r * self.context_length for r in range(repeats) for t in self.tokens)

    def row_masks(
        self, grid: tuple[int, int], images: tuple[int, ...], selected: tuple[bool, ...], batch: int, device
    ) -> torch.Tensor:
        """``[rows, h·w]``: for each probability row, the mask of its image on the layer's grid where the effect
        applies and ones elsewhere. Cached per layout and device, so steps after the first cost no transfer."""
        key = (grid, images, selected, device)
        if key not in self._row_masks:
            if self.mask.shape[0] not in (1, batch):
                raise ValueError(
                    f"the mask batch has {self.mask.shape[0]} masks but the latent batch has {batch} images; "
                    "give one mask, or one per image"
                )
            # Built outside inference mode: a later pass that records gradients (null-text inversion, training)
            # must be able to save the cached tensor for backward.
            with torch.inference_mode(False):
                grid_mask = mask_to_token_grid(self.mask, grid)
                rows = [
                    grid_mask[i % grid_mask.shape[0]] if s else torch.ones_like(grid_mask[0])
                    for i, s in zip(images, selected, strict=True)
                ]
                self._row_masks[key] = torch.stack(rows).to(device)
        return self._row_masks[key]

    def apply(self, probabilities: torch.Tensor, context: EffectContext) -> tuple[torch.Tensor, ChangedColumns]:
        columns = self.columns(probabilities.shape[-1])
        masks = self.row_masks(context.grid, context.row_images, context.selected, context.images, context.device)
        masked = mask_token_probabilities(
            probabilities, context.index(columns), masks, strength=self.strength, renormalize=self.renormalize
        )
        return masked, ALL if self.renormalize else columns
