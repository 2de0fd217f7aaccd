"""Cross-attention with explicit probabilities.

Multi-head attention splits ``q ∈ R^{B×Tq×(H·d)}``, ``k, v ∈ R^{B×Tk×(H·d)}`` into H heads and computes

    A = softmax(Q Kᵀ / √d) ∈ R^{B×H×Tq×Tk},        O = A V.

Editing methods change A (masking, replacing or re-weighting the columns of chosen tokens). Instead of
recomputing O from scratch, the edited output is written as a correction of any attention output that used the
unedited probabilities:

    O* = A* V = A V + (A* − A) V,

so the correction only needs the columns where A* differs from A, and the first term can come from a fast
attention kernel or from another extension's attention (IP-Adapter style) that must be kept.
"""

import torch


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``[B, T, H·d] → [B, H, T, d]``."""
    batch, tokens, width = x.shape
    return x.view(batch, tokens, heads, width // heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``[B, H, T, d] → [B, T, H·d]``."""
    batch, heads, tokens, dim = x.shape
    return x.transpose(1, 2).reshape(batch, tokens, heads * dim)


def attention_probabilities(q: torch.Tensor, k: torch.Tensor, heads: int) -> torch.Tensor:
    """``A = softmax(Q Kᵀ / √d)`` per head, in float32 whatever the input dtype. Returns ``[B, H, Tq, Tk]``."""
    qh = split_heads(q.float(), heads)
    kh = split_heads(k.float(), heads)
    scale = qh.shape[-1] ** -0.5
    return torch.softmax(torch.matmul(qh, kh.transpose(-1, -2)) * scale, dim=-1)


def attention_output(probs: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``O = A V`` for probabilities ``[B, H, Tq, Tk]`` and values ``[B, Tk, H·d]``; returns ``[B, Tq, H·d]``."""
    vh = split_heads(v.float(), probs.shape[1])
    return merge_heads(torch.matmul(probs, vh)).to(v.dtype)


def output_correction(
    new_probs: torch.Tensor, old_probs: torch.Tensor, v: torch.Tensor, columns: torch.Tensor | None
) -> torch.Tensor:
    """``(A* − A) V`` restricted to the token ``columns`` where A* may differ from A (all columns when None).

    Returns ``[B, Tq, H·d]`` in float32, to be added to an attention output computed with A.
    """
    delta = new_probs - old_probs
    vh = split_heads(v.float(), new_probs.shape[1])
    if columns is not None:
        delta = delta.index_select(-1, columns)
        vh = vh.index_select(-2, columns)
    return merge_heads(torch.matmul(delta, vh))
