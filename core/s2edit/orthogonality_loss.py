"""S2Edit's semantic control: an orthogonality constraint between the identity token and the prompt.

With e_P the prompt's sentence embedding (the text encoder's EOS / pooled vector) and e_[I] the identity token's
embedding, the projection of e_[I] on e_P has length ‖e_[I]‖ |cos(e_P, e_[I])|; S2Edit minimises the scale-free

    L_semantic = ‖Proj_{e_P}(e_[I])‖ / ‖e_[I]‖ = |cos(e_P, e_[I])|,

so [I] keeps only what the prompt does not already say, and the full objective is L = L_recons + λ L_semantic
(λ = 0.1 in the paper).
"""

import torch


def absolute_cosine(prompt_embedding: torch.Tensor, token_embedding: torch.Tensor) -> torch.Tensor:
    """``|cos(e_P, e_[I])|`` over the last dimension, in float32 (a zero vector gives 0)."""
    return torch.nn.functional.cosine_similarity(prompt_embedding.float(), token_embedding.float(), dim=-1).abs()


def semantic_loss(prompt_embedding: torch.Tensor, token_embedding: torch.Tensor, weight: float) -> torch.Tensor:
    """``λ · mean |cos(e_P, e_[I])|``."""
    return weight * absolute_cosine(prompt_embedding, token_embedding).mean()
