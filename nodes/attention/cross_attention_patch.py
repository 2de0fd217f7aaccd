"""Cross-attention effects on a ComfyUI UNet (SD1.x/2.x, SDXL and their InstructPix2Pix variants).

One ``CrossAttentionPatch`` sits in ``patches_replace["attn2"]`` for each transformer layer that needs it and runs
an ordered list of effects: probability modifiers (token masks), cross-batch edits (a prompt's images rebuilt from
its first image's probabilities, for prompt-to-prompt) and recorders (attention capture). It computes the
probabilities only when an effect is active for the current step and prompt, and adds the correction
``(A* − A) V`` (see ``core.attention.cross_attention``) to the ordinary attention output.

Other packs' ``attn2`` replaces are kept in either order. The ordinary output comes from the layer's own replace
installed before ours, else from the block's replace (a 2-tuple key such as ``("input", 1)``, which ComfyUI looks up
only when no layer key matches, so ours would hide it) as found in the running model at call time, whether it was
installed before or after ours; else from ComfyUI's selected attention backend. A pack that finds our patch at its
key and chains into it with ``add(callback, **kwargs)`` (IP-Adapter's protocol) has its callback's output added.

Which chunk of the batch is which prompt: an ``OUTER_SAMPLE`` wrapper indexes the guider's conds by their uuid
(role ``positive``/``negative``/``middle``/… and the tags our nodes put on a CONDITIONING), and an
``APPLY_MODEL`` wrapper resolves ``transformer_options["uuids"]`` and the current sigma once per UNet call. No
assumption is made about ``cond_or_uncond`` values. Outside a guider (a training loop calling the model), every
prompt of the batch counts as targeted.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from comfy.ldm.modules.attention import SpatialTransformer, optimized_attention
from comfy.ldm.modules.diffusionmodules.openaimodel import Downsample, Upsample
from comfy.model_patcher import ModelPatcher
from comfy.patcher_extension import CallbacksMP, WrappersMP

from ...core.attention.attention_store import AttentionStore
from ...core.attention.cross_attention import attention_probabilities, output_correction
from ...core.attention.token_grid import mask_to_token_grid
from ...core.attention.token_mask import mask_token_probabilities

WRAPPER_KEY = "precise_edit.cross_attention"
RUN_CONDS_KEY = "precise_edit_conds"
CALL_KEY = "precise_edit_call"
COND_TAGS_KEY = "precise_edit_targets"

LayerKey = tuple[str, int, int]
Attention = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, dict], torch.Tensor]


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


@dataclass(frozen=True)
class CondInfo:
    """What a cond of the running guider is: its role in the guider and the tags our nodes attached."""

    role: str
    tags: frozenset[str]


@dataclass(frozen=True)
class CallInfo:
    """Per UNet call: the current sigma, per batch chunk its cond (None outside a guider), and the ``attn2``
    replaces the call runs with (None when unknown)."""

    sigma: float
    chunks: tuple[CondInfo | None, ...] | None
    attn2_replaces: dict | None = None


@dataclass(frozen=True)
class PromptTarget:
    """The prompts an effect applies to: conds carrying ``tag``, else conds of guider role ``role`` ("all": any)."""

    role: str = "positive"
    tag: str | None = None

    def matches(self, cond: CondInfo | None) -> bool:
        if cond is None:
            return True
        if self.tag is not None:
            return self.tag in cond.tags
        return self.role == "all" or cond.role == self.role


@dataclass(frozen=True)
class StepRange:
    """Active while ``sigma_end ≤ σ ≤ sigma_start`` (from start/end percent through the model's sampling)."""

    sigma_start: float
    sigma_end: float

    @classmethod
    def from_percent(cls, model: ModelPatcher, start_percent: float, end_percent: float) -> "StepRange":
        if start_percent > end_percent:
            raise ValueError(f"start_percent ({start_percent}) must not exceed end_percent ({end_percent})")
        sampling = model.get_model_object("model_sampling")
        return cls(sampling.percent_to_sigma(start_percent), sampling.percent_to_sigma(end_percent))

    @classmethod
    def from_steps(cls, sampling_sigmas: torch.Tensor, steps: range) -> "StepRange":
        """Active at the sampling steps ``steps`` (step i evaluates the model at ``sampling_sigmas[i]``)."""
        if not steps:
            raise ValueError("an empty range of steps has no sigma range")
        return cls(float(sampling_sigmas[steps[0]]), float(sampling_sigmas[steps[-1]]))

    def contains(self, sigma: float) -> bool:
        return self.sigma_end <= sigma <= self.sigma_start


def context_repetitions(context_length: int, keys: int) -> int:
    """How often a prompt of ``context_length`` tokens is repeated in a cross-attention context of ``keys`` tokens.

    ComfyUI repeats a shorter context up to the least common multiple when it batches prompts of different
    lengths, so each token of the prompt then appears once per repetition.
    """
    if keys % context_length:
        raise ValueError(f"cross-attention has {keys} context tokens, not a multiple of the prompt's {context_length}")
    return keys // context_length


@dataclass(frozen=True, eq=False)
class TokenMask:
    """Multiply the cross-attention probabilities of ``tokens`` by a spatial mask (core.attention.token_mask)."""

    tokens: tuple[int, ...]
    context_length: int
    mask: torch.Tensor
    strength: float
    renormalize: bool
    steps: StepRange
    target: PromptTarget
    _cache: dict = field(default_factory=dict, repr=False)

    def columns(self, keys: int) -> tuple[int, ...]:
        """The masked token columns, once per repetition of the prompt in the context."""
        repeats = context_repetitions(self.context_length, keys)
        return tuple(t + r * self.context_length for r in range(repeats) for t in self.tokens)

    def row_masks(
        self, grid: tuple[int, int], images: tuple[int, ...], selected: tuple[bool, ...], batch: int, device
    ) -> torch.Tensor:
        """``[rows, h·w]``: for each probability row, the mask of its image on the layer's grid where the effect
        applies and ones elsewhere. Cached per layout and device, so steps after the first cost no transfer."""
        key = (grid, images, selected, device)
        if key not in self._cache:
            if self.mask.shape[0] not in (1, batch):
                raise ValueError(
                    f"the mask batch has {self.mask.shape[0]} masks but the latent batch has {batch} images; "
                    "give one mask, or one per image"
                )
            # Built outside inference mode: a later pass that records gradients (null-text inversion, training)
            # must be able to save the cached tensor for backward.
            with torch.inference_mode(False):
                grid_mask = mask_to_token_grid(self.mask, grid)
                rows = [
                    grid_mask[i % grid_mask.shape[0]] if s else torch.ones_like(grid_mask[0])
                    for i, s in zip(images, selected, strict=True)
                ]
                self._cache[key] = torch.stack(rows).to(device)
        return self._cache[key]

    def apply(self, probs: torch.Tensor, row_masks: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        return mask_token_probabilities(probs, columns, row_masks, self.strength, self.renormalize)

    def __deepcopy__(self, memo: dict) -> "TokenMask":
        return self


@dataclass(frozen=True, eq=False)
class AttentionCapture:
    """Record the (possibly masked) probabilities of the targeted prompt into an AttentionStore."""

    store: AttentionStore
    context_length: int
    heads: tuple[int, ...] | None
    steps: StepRange
    target: PromptTarget

    def record(self, layer: CrossAttentionLayer, probs: torch.Tensor, grid: tuple[int, int]) -> None:
        repeats = context_repetitions(self.context_length, probs.shape[-1])
        if repeats > 1:
            probs = probs.view(*probs.shape[:-1], repeats, self.context_length).sum(-2)
        self.store.add(layer.name, probs, grid, self.heads)

    def __deepcopy__(self, memo: dict) -> "AttentionCapture":
        return self


@dataclass(frozen=True, eq=False)
class PromptBatchEdit:
    """Rebuild the probabilities of a targeted prompt's images from those of its first image.

    ``edit`` maps ``[images, H, Tq, Tk]`` (the images of one targeted batch chunk, in batch order) to the edited
    probabilities of the same shape; prompt-to-prompt puts the source first and the targets after it.
    """

    edit: Callable[[torch.Tensor], torch.Tensor]
    steps: StepRange
    target: PromptTarget

    def __deepcopy__(self, memo: dict) -> "PromptBatchEdit":
        return self


Effect = TokenMask | AttentionCapture | PromptBatchEdit


def call_layout(extra_options: dict) -> tuple[CallInfo, tuple[CondInfo | None, ...], int]:
    """The call's sigma and conds, each batch chunk's cond, and the number of images per chunk."""
    call: CallInfo | None = extra_options.get(CALL_KEY)
    if call is None:
        call = CallInfo(float(extra_options["sigmas"].max()), None)
    chunk_count = len(extra_options["cond_or_uncond"])
    chunks = call.chunks if call.chunks is not None else (None,) * chunk_count
    return call, chunks, chunk_count


AddedCallback = tuple[Callable[..., torch.Tensor], dict]


class CrossAttentionPatch:
    """The ``attn2`` replace of one layer: runs our effects on top of the previous attention.

    ``previous`` is the layer's own replace installed before ours; ``block_replace`` the block's replace found then,
    used when a call does not say which one the running model holds; ``added`` the callbacks other packs chained
    in with ``add``. Row and column choices are made on the host and their index tensors cached per device, so a
    step adds no host-device synchronisation.
    """

    def __init__(
        self,
        layer: CrossAttentionLayer,
        effects: tuple[Effect, ...],
        previous: Attention | None,
        block_replace: Attention | None = None,
        added: tuple[AddedCallback, ...] = (),
    ) -> None:
        self.layer = layer
        self.effects = effects
        self.previous = previous
        self.block_replace = block_replace
        self.added = added
        self._indices: dict[tuple, torch.Tensor] = {}

    def with_effect(self, effect: Effect) -> "CrossAttentionPatch":
        return CrossAttentionPatch(self.layer, self.effects + (effect,), self.previous, self.block_replace, self.added)

    def add(self, callback: Callable[..., torch.Tensor], **kwargs) -> None:
        """Chain another pack's attention into this layer, as ComfyUI_IPAdapter_plus does when it finds an ``attn2``
        replace at its key: ``callback(out, q, k, v, extra_options, **kwargs)`` is added to the attention output
        while ``sigma_end ≤ σ ≤ sigma_start`` (always when the kwargs name no range).

        The caller keeps no reference of its own, so this changes the patch in place; each model clone holds its own
        patch object (``own_patches_on_clone``), so the model the caller cloned from is not changed.
        """
        self.added = self.added + ((callback, kwargs),)

    def begin_run(self) -> None:
        for effect in self.effects:
            if isinstance(effect, AttentionCapture):
                effect.store.reset()

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

    def index(self, values: tuple[int, ...], device: torch.device) -> torch.Tensor:
        key = (values, device)
        if key not in self._indices:
            with torch.inference_mode(False):
                self._indices[key] = torch.tensor(values, dtype=torch.long, device=device)
        return self._indices[key]

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, extra_options: dict) -> torch.Tensor:
        call, chunks, chunk_count = call_layout(extra_options)
        images = q.shape[0] // chunk_count

        active: list[tuple[Effect, tuple[int, ...], frozenset[int]]] = []
        for effect in self.effects:
            if effect.steps.contains(call.sigma):
                hit = tuple(c for c, cond in enumerate(chunks) if effect.target.matches(cond))
                if hit:
                    active.append((effect, hit, frozenset(c * images + i for c in hit for i in range(images))))
        out = self.base_attention(q, k, v, extra_options, call)
        if not active:
            return out

        rows = tuple(sorted(set().union(*(effect_rows for _, _, effect_rows in active))))
        row_index = self.index(rows, q.device)
        grid = (int(extra_options["activations_shape"][-2]), int(extra_options["activations_shape"][-1]))
        probs = attention_probabilities(
            q.index_select(0, row_index), k.index_select(0, row_index), extra_options["n_heads"]
        )
        keys = probs.shape[-1]
        edited = probs
        changed: set[int] | None = set()
        for effect, hit, effect_rows in active:
            selected = tuple(row in effect_rows for row in rows)
            if isinstance(effect, TokenMask):
                columns = effect.columns(keys)
                row_masks = effect.row_masks(grid, tuple(row % images for row in rows), selected, images, q.device)
                edited = effect.apply(edited, row_masks, self.index(columns, q.device))
                changed = None if changed is None or effect.renormalize else changed | set(columns)
            elif isinstance(effect, PromptBatchEdit):
                for chunk in hit:
                    chunk_rows = self.index(tuple(rows.index(chunk * images + i) for i in range(images)), q.device)
                    edited = edited.index_copy(0, chunk_rows, effect.edit(edited.index_select(0, chunk_rows)))
                changed = None
            else:
                chosen = tuple(i for i, is_selected in enumerate(selected) if is_selected)
                effect.record(self.layer, edited.index_select(0, self.index(chosen, q.device)), grid)
        if edited is probs:
            return out
        columns_index = None if changed is None else self.index(tuple(sorted(changed)), q.device)
        correction = output_correction(edited, probs, v.index_select(0, row_index), columns_index)
        return out.index_add(0, row_index, correction.to(out.dtype))

    def own_copy(self) -> "CrossAttentionPatch":
        """A new patch object (another pack may ``add`` to it) sharing everything this one holds."""
        clone = CrossAttentionPatch(self.layer, self.effects, self.previous, self.block_replace, self.added)
        clone._indices = self._indices
        return clone

    def __deepcopy__(self, memo: dict) -> "CrossAttentionPatch":
        """ComfyUIs that deep-copy model options on clone get an own copy, never copies of the tensors it holds."""
        return self.own_copy()


def own_patches_on_clone(original: ModelPatcher, clone: ModelPatcher) -> None:
    """ON_CLONE callback: the clone's attn2 dict holds its own CrossAttentionPatch objects.

    Later ComfyUIs copy only the dicts and lists of ``model_options`` on clone and share the objects in them, so
    without this a pack that ``add``s to the patch it finds in its clone (IP-Adapter) would change the model it
    cloned from too, and stack on every run.
    """
    replaces = clone.model_options.get("transformer_options", {}).get("patches_replace", {}).get("attn2", {})
    for key, patch in replaces.items():
        if isinstance(patch, CrossAttentionPatch):
            replaces[key] = patch.own_copy()


def _index_guider_conds(executor: Callable, *args, **kwargs):
    """OUTER_SAMPLE wrapper: index the guider's conds by uuid and reset capture stores for this run."""
    guider = executor.class_obj
    index = {
        cond["uuid"]: CondInfo(role, frozenset(cond.get(COND_TAGS_KEY, ())))
        for role, conds in guider.conds.items()
        for cond in conds
        if "uuid" in cond
    }
    options = guider.model_options.setdefault("transformer_options", {})
    options[RUN_CONDS_KEY] = index
    for patch in options.get("patches_replace", {}).get("attn2", {}).values():
        if isinstance(patch, CrossAttentionPatch):
            patch.begin_run()
    return executor(*args, **kwargs)


def _resolve_call(executor: Callable, x, t, c_concat, c_crossattn, control, transformer_options, **kwargs):
    """APPLY_MODEL wrapper: the current sigma, each batch chunk's cond and the attn2 replaces, once per UNet call."""
    index = transformer_options.get(RUN_CONDS_KEY)
    uuids = transformer_options.get("uuids")
    chunks = tuple(index.get(u) for u in uuids) if index is not None and uuids is not None else None
    replaces = transformer_options.get("patches_replace", {}).get("attn2", {})
    transformer_options[CALL_KEY] = CallInfo(float(t.max()), chunks, replaces)
    return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)


def ensure_call_wrappers(patched: ModelPatcher) -> None:
    """Install (once) the wrappers that tell attention patches the current sigma and each chunk's cond, and the clone
    callback that gives every clone of the model its own patch objects."""
    if not patched.get_wrappers(WrappersMP.OUTER_SAMPLE, WRAPPER_KEY):
        patched.add_wrapper_with_key(WrappersMP.OUTER_SAMPLE, WRAPPER_KEY, _index_guider_conds)
        patched.add_wrapper_with_key(WrappersMP.APPLY_MODEL, WRAPPER_KEY, _resolve_call)
    if not patched.get_callbacks(CallbacksMP.ON_CLONE, WRAPPER_KEY):
        patched.add_callback_with_key(CallbacksMP.ON_CLONE, WRAPPER_KEY, own_patches_on_clone)


def add_cross_attention_effect(
    model: ModelPatcher, effect: Effect, layers: Sequence[CrossAttentionLayer]
) -> ModelPatcher:
    """A clone of ``model`` with ``effect`` appended on ``layers``; the input model is left untouched."""
    patched = model.clone()
    replaces = patched.model_options.get("transformer_options", {}).get("patches_replace", {}).get("attn2", {})
    for layer in layers:
        current = replaces.get(layer.key)
        if isinstance(current, CrossAttentionPatch):
            patch = current.with_effect(effect)
        else:
            patch = CrossAttentionPatch(layer, (effect,), current, replaces.get(layer.key[:2]))
        patched.set_model_attn2_replace(patch, *layer.key)
    ensure_call_wrappers(patched)
    return patched
