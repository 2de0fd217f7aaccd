"""Cross-attention effects on a ComfyUI UNet (SD1.x/2.x, SDXL and their InstructPix2Pix variants).

One ``CrossAttentionPatch`` sits in ``patches_replace["attn2"]`` for each transformer layer that needs it and runs
an ordered list of effects (``attention_effect.AttentionEffect``: token masks, prompt-to-prompt's batch edits,
recorders, or any new effect). It computes the probabilities only when an effect is active for the current step and
prompt, runs the active effects in order, and adds the correction ``(A* − A) V`` (see
``core.attention.cross_attention``) on the columns they changed to the ordinary attention output.

Other packs' ``attn2`` replaces are kept in either order. The ordinary output comes from the layer's own replace
installed before ours, else from the block's replace (a 2-tuple key such as ``("input", 1)``, which ComfyUI looks up
only when no layer key matches, so ours would hide it) as found in the running model at call time, whether it was
installed before or after ours; else from ComfyUI's selected attention backend. A pack that finds our patch at its
key and chains into it with ``add(callback, **kwargs)`` (IP-Adapter's protocol) has its callback's output added.

Which chunk of the batch is which prompt, and the current sigma, come from the wrappers ``patch_install`` installs.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from comfy.ldm.modules.attention import SpatialTransformer, optimized_attention
from comfy.ldm.modules.diffusionmodules.openaimodel import Downsample, Upsample
from comfy.model_patcher import ModelPatcher

from ...core.attention.cross_attention import attention_probabilities, output_correction
from .attention_effect import (
    ALL,
    NONE,
    AttentionEffect,
    CallInfo,
    EffectContext,
    IndexCache,
    active_effects,
    apply_effects,
)
from .patch_install import Attention, InstalledPatch, LayerKey, call_layout, install_patches


@dataclass(frozen=True)
class CrossAttentionLayer:
    """A transformer layer with cross-attention: its ``patches_replace`` key and its token-grid stride."""

    key: LayerKey
    level: int
    heads: int

    @property
    def name(self) -> str:
        return "{}_{}_{}".format(*self.key)

    @property
    def image_stride(self) -> int:
        """Image pixels per token side (8 latent pixels per latent token, doubled per downsampling)."""
        return 8 * 2**self.level


def cross_attention_layers(model: ModelPatcher) -> list[CrossAttentionLayer]:
    """Enumerate every cross-attention layer of the model's UNet, in execution order."""
    unet = model.get_model_object("diffusion_model")
    if not all(hasattr(unet, name) for name in ("input_blocks", "middle_block", "output_blocks")):
        raise ValueError(
            f"this node needs a UNet model (SD1.x, SD2.x, SDXL or their InstructPix2Pix variants); "
            f"the connected model is {type(model.model).__name__} with a {type(unet).__name__}, which has no "
            "UNet cross-attention layers"
        )
    layers: list[CrossAttentionLayer] = []

    def collect(block_name: str, block_id: int, modules: Sequence[torch.nn.Module], level: int) -> None:
        for module in modules:
            if isinstance(module, SpatialTransformer):
                for index, transformer in enumerate(module.transformer_blocks):
                    if getattr(transformer, "attn2", None) is not None:
                        layers.append(CrossAttentionLayer((block_name, block_id, index), level, transformer.n_heads))

    level = 0
    for block_id, block in enumerate(unet.input_blocks):
        level += sum(isinstance(m, Downsample) for m in block)
        collect("input", block_id, block, level)
    if unet.middle_block is not None:
        collect("middle", 0, unet.middle_block, level)
    for block_id, block in enumerate(unet.output_blocks):
        collect("output", block_id, block, level)
        level -= sum(isinstance(m, Upsample) for m in block)
    if not layers:
        raise ValueError(f"the connected {type(model.model).__name__} UNet has no cross-attention layers")
    return layers


AddedCallback = tuple[Callable[..., torch.Tensor], dict]


class CrossAttentionPatch(InstalledPatch):
    """The ``attn2`` replace of one layer: runs our effects on top of the previous attention.

    ``previous`` is the layer's own replace installed before ours; ``block_replace`` the block's replace found then,
    used when a call does not say which one the running model holds; ``added`` the callbacks other packs chained
    in with ``add``. Row and column choices are made on the host and their index tensors cached per device, so a
    step adds no host-device synchronisation.
    """

    def __init__(
        self,
        layer: CrossAttentionLayer,
        effects: tuple[AttentionEffect, ...],
        previous: Attention | None,
        *,
        block_replace: Attention | None = None,
        added: tuple[AddedCallback, ...] = (),
    ) -> None:
        self.layer = layer
        self.effects = effects
        self.previous = previous
        self.block_replace = block_replace
        self.added = added
        self.indices = IndexCache()

    def with_effect(self, effect: AttentionEffect) -> "CrossAttentionPatch":
        return CrossAttentionPatch(
            self.layer,
            self.effects + (effect,),
            self.previous,
            block_replace=self.block_replace,
            added=self.added,
        )

    def add(self, callback: Callable[..., torch.Tensor], **kwargs) -> None:
        """Chain another pack's attention into this layer, as ComfyUI_IPAdapter_plus does when it finds an ``attn2``
        replace at its key: ``callback(out, q, k, v, extra_options, **kwargs)`` is added to the attention output
        while ``sigma_end ≤ σ ≤ sigma_start`` (always when the kwargs name no range).

        The caller keeps no reference of its own, so this changes the patch in place; each model clone holds its own
        patch object (``clone_copy``), so the model the caller cloned from is not changed.
        """
        self.added = self.added + ((callback, kwargs),)

    def begin_run(self) -> None:
        for effect in self.effects:
            effect.begin_run()

    def replaced_attention(self, call: CallInfo) -> Attention | None:
        """The other pack's replace ComfyUI would run here without ours: the layer's own, else the block's."""
        if self.previous is not None:
            return self.previous
        if call.attn2_replaces is None:
            return self.block_replace
        return call.attn2_replaces.get(self.layer.key[:2])

    def base_attention(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, extra_options: dict, call: CallInfo
    ) -> torch.Tensor:
        replaced = self.replaced_attention(call)
        if replaced is not None:
            out = replaced(q, k, v, extra_options)
        else:
            out = optimized_attention(
                q,
                k,
                v,
                extra_options["n_heads"],
                attn_precision=extra_options.get("attn_precision"),
                transformer_options=extra_options,
            )
        for callback, kwargs in self.added:
            if kwargs.get("sigma_end", -math.inf) <= call.sigma <= kwargs.get("sigma_start", math.inf):
                out = out + callback(out, q, k, v, extra_options, **kwargs)
        return out

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, extra_options: dict) -> torch.Tensor:
        call, chunks, chunk_count = call_layout(extra_options)
        active = active_effects(self.effects, call, chunks)
        out = self.base_attention(q, k, v, extra_options, call)
        if not active:
            return out

        images = q.shape[0] // chunk_count
        rows = tuple(sorted({c * images + i for _, hit in active for c in hit for i in range(images)}))
        row_index = self.indices.get(rows, q.device)
        grid = (int(extra_options["activations_shape"][-2]), int(extra_options["activations_shape"][-1]))
        probs = attention_probabilities(
            q.index_select(0, row_index), k.index_select(0, row_index), extra_options["n_heads"]
        )
        contexts = [
            (
                effect,
                EffectContext(
                    layer=self.layer,
                    call=call,
                    grid=grid,
                    images=images,
                    rows=rows,
                    chunks=hit,
                    device=q.device,
                    indices=self.indices,
                ),
            )
            for effect, hit in active
        ]
        edited, changed = apply_effects(contexts, probs)
        if changed is NONE:
            return out
        columns = None if changed is ALL else self.indices.get(changed, q.device)
        correction = output_correction(edited, probs, v.index_select(0, row_index), columns)
        return out.index_add(0, row_index, correction.to(out.dtype))

    def clone_copy(self) -> "CrossAttentionPatch":
        """A new patch object (another pack may ``add`` to it) sharing everything this one holds."""
        clone = CrossAttentionPatch(
            self.layer, self.effects, self.previous, block_replace=self.block_replace, added=self.added
        )
        clone.indices = self.indices
        return clone


def add_cross_attention_effect(
    model: ModelPatcher, effect: AttentionEffect, layers: Sequence[CrossAttentionLayer]
) -> ModelPatcher:
    """A clone of ``model`` with ``effect`` appended on ``layers``; the input model is left untouched."""

    def patch(layer: CrossAttentionLayer, current: Attention | None, block: Attention | None) -> CrossAttentionPatch:
        if isinstance(current, CrossAttentionPatch):
            return current.with_effect(effect)
        return CrossAttentionPatch(layer, (effect,), current, block_replace=block)

    return install_patches(model, "attn2", layers, patch)
