"""PreciseEdit_SpatialControl: S2Edit's spatial control term, A*_[I] = A_[I] ⊙ M_obj, for the identity trainer.

``mask_identity_attention`` applies the same masking at inference: each learned placeholder's cross-attention in
a prompt is multiplied by the token's object mask in every cross-attention layer.
"""

import math

import torch
from comfy.model_patcher import ModelPatcher
from comfy.sd import CLIP

from .comfy_node_api import io
from .cross_attention_patch import (
    PromptTarget,
    StepRange,
    TokenMask,
    add_cross_attention_effect,
    cross_attention_layers,
)
from .identity import Identity
from .identity_training import SpatialControl
from .mask_input import spatial_mask_batch
from .prompt_tokens import locate_words
from .socket_types import SpatialControlType

LOCAL_BLEND_THRESHOLD = 0.3


def mask_identity_attention(
    model: ModelPatcher, clip: CLIP, identity: Identity, text: str, target: PromptTarget | None = None
) -> ModelPatcher:
    """A clone of ``model`` whose cross-attention to each placeholder of ``text`` ("a [I] lady with a smile") is
    multiplied by that token's mask, for the prompt ``target`` (default: the sampler's positive prompt).

    ``text`` is expanded with ``identity.expand``; ``clip`` must find the saved embeddings (models/embeddings).
    Tokens without a mask, or absent from ``text``, are left alone.
    """
    expanded = identity.expand(text)
    layers = cross_attention_layers(model)
    patched = model
    for token in identity.tokens:
        if token.mask is None or token.placeholder not in text:
            continue
        positions = locate_words(clip, expanded, f"embedding:{token.embedding_name}")
        effect = TokenMask(
            tuple(positions.all_positions),
            positions.context_length,
            token.mask,
            1.0,
            False,
            StepRange(math.inf, 0.0),
            target or PromptTarget(role="positive"),
        )
        patched = add_cross_attention_effect(patched, effect, layers)
    return patched


class SpatialControlNode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_SpatialControl",
            display_name="Spatial Control (S2Edit)",
            category="Precise Edit/S2Edit",
            description=(
                "S2Edit's spatial control for the Identity Token Trainer: the identity token's cross-attention "
                "is multiplied by the object mask M_obj in every cross-attention layer at every training step "
                "(A*[I] = A[I] ⊙ M_obj), so [I] cannot learn the background. The mask is the one connected here "
                "(or to the trainer), else the subject noun's cross-attention on the 16×16-equivalent layers, "
                "normalised by its maximum and thresholded. The mask travels in PE_IDENTITY for editing."
            ),
            inputs=[
                io.Float.Input(
                    "threshold",
                    default=LOCAL_BLEND_THRESHOLD,
                    min=0.01,
                    max=1.0,
                    step=0.01,
                    tooltip="Automatic mask: 1 where the noun's normalised attention ≥ threshold (0.3 as in "
                    "prompt-to-prompt's LocalBlend).",
                ),
                io.Mask.Input(
                    "mask",
                    optional=True,
                    tooltip="Object mask M_obj at image size (1 = the subject); the trainer's own mask input wins.",
                ),
            ],
            outputs=[
                SpatialControlType.Output(
                    display_name="SPATIAL_CONTROL", tooltip="Connect to the trainer's spatial_control input."
                ),
            ],
        )

    @classmethod
    def execute(cls, threshold: float, mask: torch.Tensor | None = None) -> io.NodeOutput:
        if mask is not None:
            mask = spatial_mask_batch(mask)
            if mask.shape[0] != 1:
                raise ValueError(f"mask: give one object mask for the subject, got a batch of {mask.shape[0]}")
        return io.NodeOutput(SpatialControl(mask, threshold))
