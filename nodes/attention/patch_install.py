"""Installing attention patches on a model: one helper for the cross- (``attn2``) and self-attention (``attn1``) ones.

``install_patches`` puts a patch into ``transformer_options["patches_replace"][kind]`` for each layer of a clone
(the input model is left untouched), built from what is already there (the layer's replace and its block's, so a
patch can chain or extend it), and installs once per model:

- the wrappers that tell patches about each call: an ``OUTER_SAMPLE`` wrapper indexes the guider's conds by their
  uuid (role ``positive``/``negative``/``middle``/… and the tags our nodes put on a CONDITIONING) and calls every
  patch's ``begin_run``; an ``APPLY_MODEL`` wrapper resolves ``transformer_options["uuids"]`` and the current sigma
  once per model call into a ``CallInfo`` (read back with ``call_layout``) and records the latent's shape. No
  assumption is made about ``cond_or_uncond`` values; outside a guider (a training loop calling the model) every
  chunk's cond is None;
- an ``ON_CLONE`` callback that gives every clone its own copy of the patches (``SharedOnClone.clone_copy``), as
  ComfyUI 0.3.x's deep copy of ``model_options`` does, for the later ComfyUIs that share option objects on clone.
"""

from collections.abc import Callable, Sequence
from typing import Protocol

import torch
from comfy.model_patcher import ModelPatcher
from comfy.patcher_extension import CallbacksMP, WrappersMP

from .attention_effect import CallInfo, CondInfo
from .shared_on_clone import SharedOnClone

WRAPPER_KEY = "precise_edit.cross_attention"
RUN_CONDS_KEY = "precise_edit_conds"
CALL_KEY = "precise_edit_call"
COND_TAGS_KEY = "precise_edit_targets"
LATENT_SHAPE_KEY = "precise_edit_latent_shape"
PATCH_KINDS = ("attn1", "attn2", "dit")

LayerKey = tuple[str, int, int] | tuple[str, int]
Attention = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, dict], torch.Tensor]


class InstalledPatch(SharedOnClone):
    """A patch ``install_patches`` puts in place: told when a sampling run begins, copied per model clone."""

    def begin_run(self) -> None:
        """Called once per sampling run, before its first step."""


class PatchedLayer(Protocol):
    @property
    def key(self) -> LayerKey: ...


def call_layout(extra_options: dict) -> tuple[CallInfo, tuple[CondInfo | None, ...], int]:
    """The call's sigma and conds, each batch chunk's cond, and the number of images per chunk."""
    call: CallInfo | None = extra_options.get(CALL_KEY)
    if call is None:
        call = CallInfo(float(extra_options["sigmas"].max()), None)
    chunk_count = len(extra_options["cond_or_uncond"])
    chunks = call.chunks if call.chunks is not None else (None,) * chunk_count
    return call, chunks, chunk_count


def _installed(options: dict) -> list[tuple[dict, LayerKey, InstalledPatch]]:
    """Our patches in ``transformer_options``: (their replaces dict, key, patch)."""
    replaces = options.get("patches_replace", {})
    return [
        (replaces[kind], key, patch)
        for kind in PATCH_KINDS
        for key, patch in replaces.get(kind, {}).items()
        if isinstance(patch, InstalledPatch)
    ]


def own_patches_on_clone(original: ModelPatcher, clone: ModelPatcher) -> None:
    """ON_CLONE callback: the clone's replaces hold its own patch objects (see ``SharedOnClone``).

    Later ComfyUIs copy only the dicts and lists of ``model_options`` on clone and share the objects in them, so
    without this a pack that ``add``s to the patch it finds in its clone (IP-Adapter) would change the model it
    cloned from too, and stack on every run.
    """
    for replaces, key, patch in _installed(clone.model_options.get("transformer_options", {})):
        replaces[key] = patch.clone_copy()


def _index_guider_conds(executor: Callable, *args, **kwargs):
    """OUTER_SAMPLE wrapper: index the guider's conds by uuid and begin the run of every patch."""
    guider = executor.class_obj
    index = {
        cond["uuid"]: CondInfo(role, frozenset(cond.get(COND_TAGS_KEY, ())))
        for role, conds in guider.conds.items()
        for cond in conds
        if "uuid" in cond
    }
    options = guider.model_options.setdefault("transformer_options", {})
    options[RUN_CONDS_KEY] = index
    for _, _, patch in _installed(options):
        patch.begin_run()
    return executor(*args, **kwargs)


def _resolve_call(executor: Callable, x, t, c_concat, c_crossattn, control, transformer_options, **kwargs):
    """APPLY_MODEL wrapper: the current sigma, each batch chunk's cond and the attn2 replaces, once per model call,
    and the shape of the latent the model denoises (a DiT's target token grid comes from it)."""
    index = transformer_options.get(RUN_CONDS_KEY)
    uuids = transformer_options.get("uuids")
    chunks = tuple(index.get(u) for u in uuids) if index is not None and uuids is not None else None
    replaces = transformer_options.get("patches_replace", {}).get("attn2", {})
    transformer_options[CALL_KEY] = CallInfo(float(t.max()), chunks, replaces)
    transformer_options[LATENT_SHAPE_KEY] = tuple(x.shape)
    return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)


def ensure_call_wrappers(patched: ModelPatcher) -> None:
    """Install (once) the wrappers that tell attention patches the current sigma and each chunk's cond, and the clone
    callback that gives every clone of the model its own patch objects."""
    if not patched.get_wrappers(WrappersMP.OUTER_SAMPLE, WRAPPER_KEY):
        patched.add_wrapper_with_key(WrappersMP.OUTER_SAMPLE, WRAPPER_KEY, _index_guider_conds)
        patched.add_wrapper_with_key(WrappersMP.APPLY_MODEL, WRAPPER_KEY, _resolve_call)
    if not patched.get_callbacks(CallbacksMP.ON_CLONE, WRAPPER_KEY):
        patched.add_callback_with_key(CallbacksMP.ON_CLONE, WRAPPER_KEY, own_patches_on_clone)


def install_patches(
    model: ModelPatcher,
    kind: str,
    layers: Sequence[PatchedLayer],
    make_patch: Callable[[PatchedLayer, Attention | None, Attention | None], InstalledPatch],
) -> ModelPatcher:
    """A clone of ``model`` with ``make_patch(layer, current, block)`` at each layer's ``kind`` replace, where
    ``current`` is the replace already at the layer's key and ``block`` the one at its block's 2-tuple key (which
    ComfyUI looks up only when no layer key matches); ``model`` itself is left untouched."""
    patched = model.clone()
    replaces = patched.model_options.get("transformer_options", {}).get("patches_replace", {}).get(kind, {})
    for layer in layers:
        patch = make_patch(layer, replaces.get(layer.key), replaces.get(layer.key[:2]))
        patched.set_model_patch_replace(patch, kind, *layer.key)
    ensure_call_wrappers(patched)
    return patched
