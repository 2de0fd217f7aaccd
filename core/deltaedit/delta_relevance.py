"""Per-channel relevance of a conditioning space to DeltaSpace directions, and the disentanglement threshold.

DeltaEdit zeroes the channels of Δs that are irrelevant to the edit (official ``scripts/inference.py``):

    Δs_k ← 0   where   |R_k · Δt| < τ   (τ = 0.03 by default, Δt the *raw* text difference),

with R the StyleCLIP relevance matrix (``fs3``): row k is the unit CLIP image-embedding direction produced by moving
style channel k alone, measured by re-rendering images with that channel perturbed. A conditioning space of a
diffusion model cannot be re-rendered per channel at that cost, so we estimate the same partial effect from the
training data by ridge regression of CLIP changes on code changes over all image pairs (i, j):

    R = argmin_R Σ_{i,j} ‖(ĉ_j − ĉ_i) − Rᵀ(s_j − s_i)‖² + λ‖R‖²  =  (S̃ᵀS̃ + λI)⁻¹ S̃ᵀ C̃,

because Σ_{i,j} (x_j − x_i)(y_j − y_i)ᵀ = 2N Σ_i (x_i − x̄)(y_i − ȳ)ᵀ: the all-pairs problem is the regression of
the centred normalised CLIP embeddings C̃ on the centred codes S̃ (the factor 2N is absorbed into λ =
ε · tr(S̃ᵀS̃)/D). Row k of R is the CLIP change per unit of channel k with the other channels held fixed, the
counterpart of a single-channel perturbation; rows are normalised to unit length like ``fs3``. A channel that
never varies in the data gets a zero row, so it is always below the threshold and never edited.

The absolute τ = 0.03 belongs to StyleGAN's S-space and to ViT-B/32 text differences. In a d-dimensional CLIP space a
typical score is ‖Δt‖/√d: with templated text differences of ‖Δt‖ ≈ 0.2–0.3 and d = 768 (ViT-L/14, the unCLIP-L
setup, where R is close to the identity because the conditioning is the joint CLIP's own image space) that is
0.006–0.01, so τ = 0.03 keeps 0–0.1 % of the channels and the edit all but vanishes. The relative rule compares
each score with the largest one instead,

    Δs_k ← 0   where   |R_k · Δt| < ρ · max_j |R_j · Δt|,

which does not depend on ‖Δt‖ or on the CLIP model, and always keeps the most relevant channel. ρ = 0.25 keeps
about 35–50 % of a 768-d embedding's channels (those at least a quarter as relevant as the most relevant one) and
about 90 % of the length of an edit that follows the relevance; ρ = 0 keeps every channel, ρ = 1 only the top one.
"""

from __future__ import annotations

import torch

DEFAULT_THRESHOLD = 0.03
DEFAULT_RELATIVE_THRESHOLD = 0.25
DEFAULT_RIDGE = 1e-3


def estimate_relevance(
    codes: torch.Tensor, clip_embeddings: torch.Tensor, ridge: float = DEFAULT_RIDGE
) -> torch.Tensor:
    """Unit relevance rows ``[D, d]`` from codes ``[N, D]`` and CLIP image embeddings ``[N, d]`` of N ≥ 2 images."""
    if codes.ndim != 2 or clip_embeddings.ndim != 2 or codes.shape[0] != clip_embeddings.shape[0]:
        raise ValueError(
            f"codes [N, D] and CLIP embeddings [N, d] must pair up, got {tuple(codes.shape)} and "
            f"{tuple(clip_embeddings.shape)}"
        )
    if codes.shape[0] < 2:
        raise ValueError("the relevance estimate needs at least two images")
    s = codes.double() - codes.double().mean(dim=0)
    unit = clip_embeddings.double() / clip_embeddings.double().norm(dim=1, keepdim=True)
    c = unit - unit.mean(dim=0)
    count, dim = s.shape
    lam = ridge * max(float((s * s).sum()) / dim, torch.finfo(torch.float64).tiny)
    if count < dim:
        gram = s @ s.T + lam * torch.eye(count, dtype=s.dtype)
        relevance = s.T @ torch.linalg.solve(gram, c)
    else:
        gram = s.T @ s + lam * torch.eye(dim, dtype=s.dtype)
        relevance = torch.linalg.solve(gram, s.T @ c)
    norms = relevance.norm(dim=1, keepdim=True)
    return torch.where(norms > 0, relevance / norms.clamp_min(torch.finfo(torch.float64).tiny), 0.0).float()


def relevance_scores(relevance: torch.Tensor, direction_raw: torch.Tensor) -> torch.Tensor:
    """``|R_k · Δ|`` for every channel k: ``[D]``."""
    if relevance.shape[1] != direction_raw.shape[-1]:
        raise ValueError(
            f"the relevance matrix is for {relevance.shape[1]}-d CLIP directions, the direction has "
            f"{direction_raw.shape[-1]} dims: they come from different CLIP models"
        )
    return (relevance.float() @ direction_raw.float().reshape(-1)).abs()


def relevant_channels(
    relevance: torch.Tensor, direction_raw: torch.Tensor, threshold: float, relative: bool = False
) -> torch.Tensor:
    """Boolean ``[D]``, the channels the edit may change: ``|R_k · Δ| ≥ τ``, or with ``relative``
    ``|R_k · Δ| ≥ ρ · max_j |R_j · Δ|`` (a channel of zero relevance only when ρ = 0)."""
    scores = relevance_scores(relevance, direction_raw)
    if not relative:
        return scores >= threshold
    keep = scores >= threshold * scores.max()
    return keep & (scores > 0) if threshold > 0 else keep


def disentangle(
    delta_codes: torch.Tensor,
    relevance: torch.Tensor,
    direction_raw: torch.Tensor,
    *,
    threshold: float,
    relative: bool = False,
) -> torch.Tensor:
    """Δs with the channels below the threshold set to zero (others untouched); ``[..., D]``."""
    keep = relevant_channels(relevance, direction_raw, threshold, relative)
    return torch.where(keep.to(delta_codes.device), delta_codes, torch.zeros_like(delta_codes))
