"""Where a prompt-to-prompt edit acts: a UNet's cross-attention layers or a DiT's joint-attention blocks.

Both take the same effects (``attention_effect.AttentionEffect``): on a UNet each ``attn2`` layer
(``cross_attention_patch``), on a DiT (Flux.1/Kontext/Flux.2, Qwen-Image(-Edit), SD3) each joint-attention block
(``dit_attention_patch``), where the effects see the target image's queries × the text keys. A DiT has no separate
self-attention layers, so prompt-to-prompt's self-attention replacement and the S2Edit identity's UNet-trained mask
are UNet-only.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from comfy.model_patcher import ModelPatcher

from ..attention.attention_effect import AttentionEffect
from ..attention.cross_attention_patch import add_cross_attention_effect, cross_attention_layers
from ..attention.dit_attention_patch import add_dit_attention_effect
from ..attention.dit_layers import dit_family_or_unet

AddEffect = Callable[[ModelPatcher, AttentionEffect, Sequence], ModelPatcher]


@dataclass(frozen=True)
class EditSites:
    """The layers (UNet) or blocks (DiT) an edit's effects go on, and the function that installs one there."""

    layers: tuple
    add_effect: AddEffect
    joint: bool
    """True for a DiT's joint attention."""

    def add(self, model: ModelPatcher, effect: AttentionEffect, layers: Sequence | None = None) -> ModelPatcher:
        """A clone of ``model`` with ``effect`` on ``layers`` (all of them when None)."""
        return self.add_effect(model, effect, self.layers if layers is None else layers)


def edit_sites(model: ModelPatcher) -> EditSites:
    """The model's joint-attention blocks if it is a supported DiT, else its UNet cross-attention layers; an error
    naming the family and the supported ones for any other model."""
    family = dit_family_or_unet(model)
    if family is not None:
        return EditSites(family.blocks, add_dit_attention_effect, joint=True)
    return EditSites(tuple(cross_attention_layers(model)), add_cross_attention_effect, joint=False)
