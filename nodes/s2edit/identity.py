"""PE_IDENTITY: what S2Edit's identity-token training hands to editing nodes.

One ``IdentityToken`` per learned placeholder ("[I]" for the identity, "[A]" for an attribute in compositional
editing): its embedding (saved as ``models/embeddings/<embedding_name>.safetensors``, so ``embedding:<name>`` works
in any prompt), and the object mask that spatial control applied to its cross-attention during training. Inversion
and editing keep applying the identity token's (the first token's) mask on the source image; an attribute's mask
belongs to its reference image and is not applied there. ``Identity`` bundles the tokens with the source
prompt(s), the LoRA file and the training record. ``Identity.expand`` turns a "[I]"-prompt into text a stock CLIP
Text Encode understands.
"""

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True, kw_only=True)
class IdentityToken:
    """One learned placeholder token.

    ``placeholder``: the text it stands for in prompts ("[I]", "[A]"). ``embedding_name``: the file stem under
    ``models/embeddings`` (``embedding:<embedding_name>`` in a prompt). ``vectors``: the learned input-embedding
    rows per text encoder, ``{"clip_l": [n, 768]}`` on SD1.x, plus ``"clip_g": [n, 1280]`` on SDXL (n = 1).
    ``mask``: the object mask M_obj, [1, H, W] in [0, 1] at image resolution, or None without spatial control.
    ``source_prompt``: the training prompt of this token's subject (placeholder included).
    ``subject``: the noun that names the subject ("lady"), "" when none was given.
    """

    placeholder: str
    embedding_name: str
    vectors: dict[str, torch.Tensor]
    mask: torch.Tensor | None
    source_prompt: str = ""
    subject: str = ""


@dataclass(frozen=True, kw_only=True)
class Identity:
    """The result of identity-token training (S2Edit §3.2), carried by the PE_IDENTITY socket.

    ``tokens``: the learned placeholders, identity first. ``source_prompt``: the first subject's training prompt
    with its placeholder ("a photo of a [I] lady with glasses"). ``lora_name``: the LoRA file under
    ``models/loras`` (UNet and, when trained, text encoder in one file), None when no LoRA was trained.
    ``lora``: the LoRA tensors in that file's key layout (``lora_unet_...`` / ``lora_te1_...``).
    ``metadata``: the training record (steps, learning rates, rank, λ, final losses and cosine, ...).
    """

    tokens: tuple[IdentityToken, ...]
    source_prompt: str
    lora_name: str | None
    lora: dict[str, torch.Tensor] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)

    def token(self, placeholder: str) -> IdentityToken:
        """The token learned for ``placeholder`` ("[I]"); a ValueError naming the known ones otherwise."""
        for token in self.tokens:
            if token.placeholder == placeholder:
                return token
        known = ", ".join(token.placeholder for token in self.tokens)
        raise ValueError(f"identity: no token was learned for {placeholder!r} (learned: {known})")

    def expand(self, text: str) -> str:
        """``text`` with every placeholder replaced by ``embedding:<embedding_name>``.

        "a [I] lady with [A] makeup" → "a embedding:pe_id_0001 lady with embedding:pe_attr_0001 makeup"; the
        result encodes with any CLIP whose embedding directory holds the saved files (stock CLIP Text Encode).
        """
        for token in self.tokens:
            text = text.replace(token.placeholder, f"embedding:{token.embedding_name}")
        return text
