"""Prompt-to-prompt self-attention replacement on a ComfyUI UNet (SD1.x/2.x, SDXL).

In a targeted prompt's batch chunk, image 0 is the source and images 1.. are edits. In the chosen layers and
steps, each edit's self-attention probabilities are the source's, applied to the edit's own values:

    O_tgt = softmax(Q_src K_srcᵀ / √d) V_tgt,

which is an ordinary attention call on (Q_src, K_src, V_tgt), so no probability matrix is materialised. The layers
are those with at most 32² tokens at 512 px (P2P's ``attn.shape[1] <= 32 ** 2``): a token-grid stride of at least
16 image pixels, found from the model's own blocks (``cross_attention_layers``), so SDXL's layers at any image size
follow the same rule. The rows of the source and of untargeted chunks come from the attention that was there
before (an earlier ``attn1`` replace, or ComfyUI's attention); the replaced rows use ComfyUI's attention directly.
"""

from collections.abc import Sequence

import torch
from comfy.ldm.modules.attention import optimized_attention
from comfy.model_patcher import ModelPatcher

from .cross_attention_patch import (
    Attention,
    CrossAttentionLayer,
    PromptTarget,
    StepRange,
    call_layout,
    cross_attention_layers,
    ensure_call_wrappers,
)

SELF_REPLACE_MIN_STRIDE = 16
"""Image pixels per token side from which self-attention is replaced: 512 / 16 = 32 tokens per side."""


def self_replace_layers(model: ModelPatcher) -> list[CrossAttentionLayer]:
    """The transformer layers whose self-attention prompt-to-prompt replaces (≤ 32² tokens at 512 px)."""
    return [layer for layer in cross_attention_layers(model) if layer.image_stride >= SELF_REPLACE_MIN_STRIDE]


class SelfAttentionReplace:
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

    def __deepcopy__(self, memo: dict) -> "SelfAttentionReplace":
        return self


def add_self_attention_replace(
    model: ModelPatcher, steps: StepRange, target: PromptTarget, layers: Sequence[CrossAttentionLayer]
) -> ModelPatcher:
    """A clone of ``model`` whose ``layers`` replace the edits' self-attention at ``steps``; ``model`` is untouched."""
    patched = model.clone()
    replaces = patched.model_options.get("transformer_options", {}).get("patches_replace", {}).get("attn1", {})
    for layer in layers:
        previous = replaces.get(layer.key, replaces.get(layer.key[:2]))
        patched.set_model_attn1_replace(SelfAttentionReplace(layer, steps, target, previous), *layer.key)
    ensure_call_wrappers(patched)
    return patched
