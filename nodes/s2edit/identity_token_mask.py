"""S2Edit's spatial control at inference: the identity token [I]'s object mask and its positions in one prompt.

Inversion and the prompt-to-prompt replay multiply [I]'s cross-attention by M_obj at every step, as training did
(A*_[I] = A_[I] ⊙ M_obj). Only the identity token is masked: in a compositional identity, [A]'s mask is the object
mask of the *reference* image it was learned from and says nothing about where [A] belongs in the source image.
"""

import math
from dataclasses import dataclass

import torch
from comfy.sd import CLIP

from ..attention.attention_effect import PromptTarget, StepRange
from ..attention.prompt_tokens import locate_words
from ..attention.token_mask_effect import TokenMask
from .identity import Identity

EVERY_STEP = StepRange(math.inf, 0.0)


@dataclass(frozen=True)
class IdentityTokenMask:
    """[I]'s object mask ``[1, H, W]`` and its token positions in a prompt of ``context_length`` tokens."""

    placeholder: str
    positions: tuple[int, ...]
    context_length: int
    mask: torch.Tensor

    def effect(self, target: PromptTarget, images: int = 1, image: int = 0) -> TokenMask:
        """Mask ``positions`` at every step in image ``image`` of each targeted batch chunk of ``images`` images;
        the chunk's other images are left alone (their prompt may hold [I] elsewhere)."""
        if images == 1:
            masks = self.mask
        else:
            masks = torch.cat([self.mask if i == image else torch.ones_like(self.mask) for i in range(images)])
        return TokenMask(
            tokens=self.positions,
            context_length=self.context_length,
            mask=masks,
            strength=1.0,
            renormalize=False,
            steps=EVERY_STEP,
            target=target,
        )

    def same_mask(self, other: "IdentityTokenMask") -> bool:
        return self.placeholder == other.placeholder and torch.equal(self.mask, other.mask)


def identity_token_mask(clip: CLIP, identity: Identity | None, text: str, name: str) -> IdentityTokenMask | None:
    """The identity token's (``identity.tokens[0]``) mask and positions in the expanded prompt ``text``.

    None without an identity, without a mask (no spatial control) or when ``text`` does not hold the token.
    """
    if identity is None:
        return None
    token = identity.tokens[0]
    embedding = f"embedding:{token.embedding_name}"
    if token.mask is None or embedding not in text.split():
        return None
    if token.mask.ndim != 3 or token.mask.shape[0] != 1:
        raise ValueError(f"identity: the mask of {token.placeholder} must be [1, H, W], got {tuple(token.mask.shape)}")
    try:
        positions = locate_words(clip, text, embedding)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None
    return IdentityTokenMask(
        token.placeholder, tuple(positions.all_positions), positions.context_length, token.mask.float().cpu()
    )
