"""Word-to-pixel probabilities of a DiT's joint attention, and the output correction of an edit of them.

A joint attention block (Flux, Qwen-Image, SD3's MMDiT) attends over one sequence of ``T = T_txt + T_img (+ T_ref)``
tokens: the prompt's text tokens first, then the target image's tokens (then any reference image's). Per head,

    A = softmax(Q Kᵀ · s + M) ∈ R^{T×T},        O = A V,

with scale ``s = 1/√d`` and an optional additive mask M. The word-to-pixel probabilities are the block of A with
image-target queries ``i ∈ I`` and text keys ``t ∈ T_txt``, normalised over every key (text, image and reference):

    A[i, t] = exp(q_i·k_t s + M_it − ℓ_i),        ℓ_i = log Σ_{j=1..T} exp(q_i·k_j s + M_ij).

``ℓ`` is computed in chunks of image queries, so no ``[T_img, T]`` matrix is held for all queries at once, and
only the ``[T_img, T_txt]`` block is kept. An edit A* of that block (the other columns unchanged) changes the image
queries' output by

    O*_i = O_i + Σ_{t∈T_txt} (A*[i, t] − A[i, t]) v_t,

so the fast attention kernel still computes O and the correction needs only the text columns.
"""

import torch

QUERY_CHUNK = 256


def batch_heads_mask(mask: torch.Tensor) -> torch.Tensor:
    """A mask of ``[T, T]`` or ``[B, T, T]`` (ComfyUI's conventions) as ``[1 or B, 1, T, T]``; 4-d masks as given."""
    if mask.ndim == 2:
        return mask[None, None]
    if mask.ndim == 3:
        return mask[:, None]
    return mask


def mask_rows(mask: torch.Tensor | None, queries: slice) -> torch.Tensor | None:
    """An attention mask (bool: True attends; float: added to the scores) of ``[T, T]``, ``[B, T, T]`` or
    ``[B, H, T, T]`` as ``[B or 1, H or 1, rows, T]`` for the query ``rows``, or None. Masks broadcast over queries
    (one row) are kept as they are."""
    if mask is None:
        return None
    mask = batch_heads_mask(mask)
    if mask.shape[-2] == 1:
        return mask
    return mask[..., queries, :]


def image_text_probabilities(
    q: torch.Tensor,
    k: torch.Tensor,
    text_tokens: int,
    image: slice,
    *,
    mask: torch.Tensor | None = None,
    scale: float | None = None,
    chunk: int = QUERY_CHUNK,
) -> torch.Tensor:
    """``A[i, t]`` for image queries ``i`` in ``image`` and the first ``text_tokens`` keys, normalised over all keys.

    q, k: ``[B, H, T, d]``; mask: bool or additive, broadcastable to ``[B, H, T, T]``; scale: ``1/√d`` when None.
    Returns ``[B, H, len(image), text_tokens]`` in float32.
    """
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    keys = k.float()
    rows = []
    for start in range(image.start, image.stop, chunk):
        queries = slice(start, min(start + chunk, image.stop))
        scores = torch.matmul(q[:, :, queries].float(), keys.transpose(-1, -2)) * scale
        chunk_mask = mask_rows(mask, queries)
        if chunk_mask is not None:
            if chunk_mask.dtype == torch.bool:
                scores = scores.masked_fill(~chunk_mask, float("-inf"))
            else:
                scores = scores + chunk_mask.float()
        normaliser = torch.logsumexp(scores, dim=-1, keepdim=True)
        rows.append(torch.exp(scores[..., :text_tokens] - normaliser))
    return torch.cat(rows, dim=2)


def text_column_correction(new: torch.Tensor, old: torch.Tensor, text_values: torch.Tensor) -> torch.Tensor:
    """``Σ_t (A*[i, t] − A[i, t]) v_t``: ``[B, H, I, T_txt]`` probabilities and ``[B, H, T_txt, d]`` text values
    give ``[B, H, I, d]`` in float32, to be added to the image queries' attention output."""
    return torch.matmul(new - old, text_values.float())
