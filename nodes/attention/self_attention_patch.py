"""Prompt-to-prompt self-attention replacement on a ComfyUI UNet (SD1.x/2.x, SDXL).

In a targeted prompt's batch chunk, image 0 is the source and images 1.. are edits. In the chosen layers and
steps, each edit's self-attention probabilities are the source's, applied to the edit's own values:

    O_tgt = softmax(Q_src K_srcᵀ / √d) V_tgt,

which is an ordinary attention call on (Q_src, K_src, V_tgt), so no probability matrix is materialised. The rows of
the source and of untargeted chunks come from the attention that was there before (an earlier ``attn1`` replace, or
ComfyUI's attention); the replaced rows use ComfyUI's attention directly.

Which layers. The official null-text + prompt-to-prompt code (SD1.4 at 512 px) replaces a layer's self-attention
when ``att.shape[2] <= 32 ** 2``, i.e. when the layer has at most 1024 tokens, and its finest attention grid there
is the 64×64 latent: 32², 16² and 8² layers are replaced, the 64² layers keep their own attention and carry the
edit's fine structure. The count is written for that one model and size, so it is scaled here by the finest
attention grid of the connected model at the latent being edited:

    replace a layer  ⇔  T_layer ≤ 32² · T_finest / 64² = T_finest / 4,

with T the token count (``layer_choice.grid_tokens``). As a fraction of the latent's h·w tokens the limit is 1/4 on
SD1.x/2.x (attention starts at the latent's own grid) and 1/16 on SDXL (its first level has no transformer, so its
finest attention grid has half the latent's side). At SD1.x's 512 px and at SDXL's 1024 px it is the official 32²
itself: SD1.x replaces its 32², 16² and 8² layers, SDXL only its 32² layers (60 of 70), and its 64² layers stay
free. Both the limit and each layer's count scale with the image area, so the same layers are chosen at every image
size (the unscaled count would replace all 70 SDXL layers at 512 px and none of SD1.x's 32² ones at 1024 px). The
rule the pack used before, a token stride of at least 16 image pixels, is the 1/4 fraction on every model: on SDXL
it replaced all 70 layers and locked the edit's structure to the source's. (The first prompt-to-prompt notebook
used 16², the 16² and 8² layers at 512 px; the null-text notebook, S2Edit's inference stack, uses 32².)
"""

from collections.abc import Sequence

import torch
from comfy.ldm.modules.attention import optimized_attention
from comfy.model_patcher import ModelPatcher

from .attention_effect import PromptTarget, StepRange
from .cross_attention_patch import CrossAttentionLayer, cross_attention_layers
from .layer_choice import grid_tokens
from .patch_install import Attention, InstalledPatch, call_layout, install_patches

OFFICIAL_TOKEN_LIMIT = 32**2
"""The official rule's token count, ``att.shape[2] <= 32 ** 2`` (null-text notebook, SD1.4 at 512 px)."""
OFFICIAL_FINEST_TOKENS = 64**2
"""The tokens of the finest attention grid the official rule was written for (SD1.4's 64×64 latent at 512 px)."""


def self_replace_token_limit(finest_tokens: float) -> float:
    """The official 32² limit scaled to a model whose finest attention grid has ``finest_tokens`` tokens."""
    return OFFICIAL_TOKEN_LIMIT * finest_tokens / OFFICIAL_FINEST_TOKENS


def self_replace_layers(model: ModelPatcher, latent_hw: tuple[int, int]) -> list[CrossAttentionLayer]:
    """The transformer layers whose self-attention prompt-to-prompt replaces for a latent of ``latent_hw``: those
    with at most ``self_replace_token_limit`` tokens (see the module docstring)."""
    layers = cross_attention_layers(model)
    tokens = [grid_tokens(layer, latent_hw) for layer in layers]
    limit = self_replace_token_limit(max(tokens))
    return [layer for layer, count in zip(layers, tokens, strict=True) if count <= limit]


class SelfAttentionReplace(InstalledPatch):
    """The ``attn1`` replace of one layer: edits take the source's self-attention probabilities at chosen steps."""

    def __init__(
        self, layer: CrossAttentionLayer, steps: StepRange, target: PromptTarget, previous: Attention | None
    ) -> None:
        self.layer = layer
        self.steps = steps
        self.target = target
        self.previous = previous

    @staticmethod
    def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, extra_options: dict) -> torch.Tensor:
        return optimized_attention(
            q,
            k,
            v,
            extra_options["n_heads"],
            attn_precision=extra_options.get("attn_precision"),
            transformer_options=extra_options,
        )

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, extra_options: dict) -> torch.Tensor:
        out = (
            self.previous(q, k, v, extra_options)
            if self.previous is not None
            else self._attention(q, k, v, extra_options)
        )
        call, chunks, chunk_count = call_layout(extra_options)
        images = q.shape[0] // chunk_count
        if images < 2 or not self.steps.contains(call.sigma):
            return out
        for chunk, cond in enumerate(chunks):
            if not self.target.matches(cond):
                continue
            source = chunk * images
            edits = slice(source + 1, source + images)
            shape = (images - 1, *q.shape[1:])
            replaced = self._attention(
                q[source : source + 1].expand(shape), k[source : source + 1].expand(shape), v[edits], extra_options
            )
            out = torch.cat([out[: source + 1], replaced.to(out.dtype), out[source + images :]])
        return out


def add_self_attention_replace(
    model: ModelPatcher, steps: StepRange, target: PromptTarget, layers: Sequence[CrossAttentionLayer]
) -> ModelPatcher:
    """A clone of ``model`` whose ``layers`` replace the edits' self-attention at ``steps``; ``model`` is untouched."""

    def patch(layer: CrossAttentionLayer, current: Attention | None, block: Attention | None) -> SelfAttentionReplace:
        return SelfAttentionReplace(layer, steps, target, current if current is not None else block)

    return install_patches(model, "attn1", layers, patch)
