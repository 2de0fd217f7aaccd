"""Attention effects on a ComfyUI DiT's joint attention (Flux.1/Kontext/Flux.2, Qwen-Image(-Edit), SD3).

One ``DiTAttentionPatch`` sits in ``patches_replace["dit"][(kind, index)]`` for each block that needs it and runs
the same ordered effects as the UNet patch (``attention_effect.AttentionEffect``: token masks, recorders, batch
edits). When some effect is active for the current step and prompt, the block runs with a
``transformer_options["optimized_attention_override"]`` of ours, installed for this block only and the previous
value restored afterwards; another pack's override found there is kept and called as the inner attention. The
override lets the attention kernel (or that override) compute the output, then computes the image-target-query ×
text-key probabilities normalised over all keys (``core.attention.joint_attention``), runs the effects on them and
adds ``(A* − A) V`` on the text columns to the image queries' output.

What the effects see: probabilities ``[rows, H, h·w, T_txt]`` (rows sum to the text's share of attention, not to
one), ``EffectContext.grid = (h, w)`` the target image's token grid, key columns the text tokens in prompt order.
The text/image split comes from the shapes in the block call: ``txt`` of a double block (the single blocks of the
same model call reuse it), the target grid from the latent's shape and the patch size; tokens after the target
image's (Kontext, Flux.2 and Qwen-Image-Edit reference images) are never target queries. Attention calls of other
lengths in the block (SD3.5's image-only second attention) pass through. Unknown keyword arguments (ComfyUI 0.33's
``preferred_attention``) pass through to the kernel.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from comfy.model_patcher import ModelPatcher

from ...core.attention.cross_attention import merge_heads
from ...core.attention.joint_attention import batch_heads_mask, image_text_probabilities, text_column_correction
from .attention_effect import (
    NONE,
    AttentionEffect,
    CallInfo,
    EffectContext,
    IndexCache,
    active_effects,
    apply_effects,
)
from .dit_layers import DiTBlock
from .patch_install import LATENT_SHAPE_KEY, InstalledPatch, call_layout, install_patches

OVERRIDE_KEY = "optimized_attention_override"
TEXT_TOKENS_KEY = "precise_edit_text_tokens"

BlockReplace = Callable[[dict, dict], dict]


def token_grid(latent_shape: Sequence[int], patch_size: int) -> tuple[int, int]:
    """The target image's token grid: each latent side padded to a multiple of the patch size, then patchified."""
    height, width = latent_shape[-2:]
    return ((height + patch_size // 2) // patch_size, (width + patch_size // 2) // patch_size)


@dataclass(frozen=True)
class JointLayout:
    """Where the tokens of one joint attention call are: text ``[0, text)``, target image ``image``, then the rest."""

    text: int
    image: slice
    total: int
    grid: tuple[int, int]


def block_layout(block: DiTBlock, args: dict, options: dict) -> JointLayout:
    """The joint sequence of this block call, from the shapes of its ``txt``/``img`` and of the latent."""
    if "txt" in args:
        text = args["txt"].shape[1]
        options[TEXT_TOKENS_KEY] = text
        total = text + args["img"].shape[1]
    else:
        text = options[TEXT_TOKENS_KEY]
        total = args["img"].shape[1]
    grid = token_grid(options[LATENT_SHAPE_KEY], block.patch_size)
    image = slice(text, text + grid[0] * grid[1])
    if image.stop > total:
        raise ValueError(
            f"{block.name}: the latent's {grid[0]}×{grid[1]} token grid does not fit the block's {total - text} "
            "image tokens"
        )
    return JointLayout(text, image, total, grid)


def heads_first(x: torch.Tensor, heads: int, skip_reshape: bool) -> torch.Tensor:
    """q, k or v as ``[B, H, T, d]``: as given with ``skip_reshape``, else from ``[B, T, H·d]`` or ``[B, T, H, d]``."""
    if skip_reshape:
        return x
    return x.reshape(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)


class JointAttentionOverride:
    """The ``optimized_attention_override`` of one block call: the kernel's output plus the effects' correction."""

    def __init__(
        self,
        patch: "DiTAttentionPatch",
        layout: JointLayout,
        call: CallInfo,
        active: list[tuple[AttentionEffect, tuple[int, ...]]],
        chunk_count: int,
        inner: Callable | None,
    ) -> None:
        self.patch = patch
        self.layout = layout
        self.call = call
        self.active = active
        self.chunk_count = chunk_count
        self.inner = inner

    def __call__(self, func: Callable, *args, **kwargs) -> torch.Tensor:
        out = func(*args, **kwargs) if self.inner is None else self.inner(func, *args, **kwargs)
        q, k, v = args[:3]
        if q.shape[-2 if kwargs.get("skip_reshape", False) else 1] != self.layout.total:
            return out
        heads = args[3] if len(args) > 3 else kwargs["heads"]
        mask = args[4] if len(args) > 4 else kwargs.get("mask")
        return self.patch.corrected(out, q, k, v, heads, mask, self, kwargs)


class DiTAttentionPatch(InstalledPatch):
    """The ``dit`` block replace of one block: runs our effects inside the block's joint attention.

    ``previous`` is another pack's replace at the same key, installed before ours; it runs the block (with our
    override installed), else the block runs as ComfyUI's ``original_block``.
    """

    def __init__(self, block: DiTBlock, effects: tuple[AttentionEffect, ...], previous: BlockReplace | None) -> None:
        self.block = block
        self.effects = effects
        self.previous = previous
        self.indices = IndexCache()

    def with_effect(self, effect: AttentionEffect) -> "DiTAttentionPatch":
        return DiTAttentionPatch(self.block, self.effects + (effect,), self.previous)

    def begin_run(self) -> None:
        for effect in self.effects:
            effect.begin_run()

    def run_block(self, args: dict, extra: dict) -> dict:
        if self.previous is not None:
            return self.previous(args, extra)
        return extra["original_block"](args)

    def __call__(self, args: dict, extra: dict) -> dict:
        options = args["transformer_options"]
        layout = block_layout(self.block, args, options)
        call, chunks, chunk_count = call_layout(options)
        active = active_effects(self.effects, call, chunks)
        if not active:
            return self.run_block(args, extra)
        had_override = OVERRIDE_KEY in options
        inner = options.get(OVERRIDE_KEY)
        options[OVERRIDE_KEY] = JointAttentionOverride(self, layout, call, active, chunk_count, inner)
        try:
            return self.run_block(args, extra)
        finally:
            if had_override:
                options[OVERRIDE_KEY] = inner
            else:
                del options[OVERRIDE_KEY]

    def corrected(
        self,
        out: torch.Tensor,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        heads: int,
        mask: torch.Tensor | None,
        override: JointAttentionOverride,
        kwargs: dict,
    ) -> torch.Tensor:
        """The attention output ``out`` plus ``(A* − A) V`` of the active effects on the target image queries."""
        skip_reshape = kwargs.get("skip_reshape", False)
        layout = override.layout
        images = q.shape[0] // override.chunk_count
        rows = tuple(sorted({c * images + i for _, hit in override.active for c in hit for i in range(images)}))
        row_index = self.indices.get(rows, q.device)
        qh, kh, vh = (heads_first(t.index_select(0, row_index), heads, skip_reshape) for t in (q, k, v))
        if mask is not None:
            mask = batch_heads_mask(mask)
            if mask.shape[0] > 1:
                mask = mask.index_select(0, row_index)
        probs = image_text_probabilities(qh, kh, layout.text, layout.image, mask=mask, scale=kwargs.get("scale"))
        contexts = [
            (
                effect,
                EffectContext(
                    layer=self.block,
                    call=override.call,
                    grid=layout.grid,
                    images=images,
                    rows=rows,
                    chunks=hit,
                    device=q.device,
                    indices=self.indices,
                ),
            )
            for effect, hit in override.active
        ]
        edited, changed = apply_effects(contexts, probs)
        if changed is NONE:
            return out
        correction = text_column_correction(edited, probs, vh[:, :, : layout.text])
        out = out.clone()
        if kwargs.get("skip_output_reshape", False):
            out.narrow(2, layout.image.start, correction.shape[2]).index_add_(0, row_index, correction.to(out.dtype))
        else:
            target = out.narrow(1, layout.image.start, correction.shape[2])
            target.index_add_(0, row_index, merge_heads(correction).to(out.dtype))
        return out

    def clone_copy(self) -> "DiTAttentionPatch":
        """A new patch object sharing everything this one holds."""
        clone = DiTAttentionPatch(self.block, self.effects, self.previous)
        clone.indices = self.indices
        return clone


def add_dit_attention_effect(model: ModelPatcher, effect: AttentionEffect, blocks: Sequence[DiTBlock]) -> ModelPatcher:
    """A clone of ``model`` with ``effect`` appended on ``blocks``; the input model is left untouched."""

    def patch(block: DiTBlock, current: BlockReplace | None, _: BlockReplace | None) -> DiTAttentionPatch:
        if isinstance(current, DiTAttentionPatch):
            return current.with_effect(effect)
        return DiTAttentionPatch(block, (effect,), current)

    return install_patches(model, "dit", blocks, patch)
