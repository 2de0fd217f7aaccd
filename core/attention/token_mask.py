"""Spatial masking of chosen tokens' cross-attention (S2Edit's spatial control).

For the token indices I of a word and a spatial mask M over the layer's query positions (token grid),

    A*[:, :, :, I] = A[:, :, :, I] ⊙ M̃,        M̃ = 1 − s (1 − M),

with strength s ∈ [0, 1] (s = 1 gives S2Edit's A*_[I] = A_[I] ⊙ M_obj). The other columns are untouched, so rows
no longer sum to one; ``renormalize`` divides each row by its new sum when asked.
"""

import torch

from .cross_attention import attention_output, attention_probabilities


def mask_token_probabilities(
    probs: torch.Tensor,
    token_indices: torch.Tensor,
    spatial_mask: torch.Tensor,
    *,
    strength: float = 1.0,
    renormalize: bool = False,
) -> torch.Tensor:
    """Apply ``A*[..., I] = A[..., I] ⊙ (1 − s(1 − M))`` out of place.

    probs: ``[B, H, Tq, Tk]``; token_indices: long ``[n]``; spatial_mask: ``[B, Tq]`` or ``[1, Tq]`` in [0, 1].
    """
    factor = 1.0 - strength * (1.0 - spatial_mask.to(probs))
    masked = probs.clone()
    masked[..., token_indices] = probs[..., token_indices] * factor[:, None, :, None]
    if renormalize:
        masked = masked / masked.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(masked.dtype).tiny)
    return masked


def masked_cross_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    heads: int,
    *,
    token_indices: torch.Tensor,
    spatial_mask: torch.Tensor,
    strength: float = 1.0,
    renormalize: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference composition ``O* = A* V`` computed from scratch; returns ``(O*, A*)``."""
    probs = mask_token_probabilities(
        attention_probabilities(q, k, heads), token_indices, spatial_mask, strength=strength, renormalize=renormalize
    )
    return attention_output(probs, v), probs
