"""Prompt-to-prompt editing of an inverted image on a ComfyUI model: the plan, the patched model and the replay.

``plan_edit`` turns the node's inputs into an ``EditPlan``: the batched conditioning [source, target] (one cond
whose text embedding has a batch of two, tagged so that only it is edited, never the null text), the
cross-attention edit (``core.s2edit.prompt_to_prompt``), the per-step, per-token cross-replace alpha (the default window
and the words' own windows), the self-replace steps, the local-blend words and the identity token's masks.
``patch_model`` adds, on a clone of the model and in this order per cross-attention layer: the identity token
[I]'s mask on both rows, source and target, at every step (S2Edit's spatial control, as the inversion applied it,
so the source row stays the reconstruction), the capture of the blend layers' probabilities (before any edit, as
the official ``AttentionStore`` records them) and the cross-batch edit (one per run of steps that share an alpha
row); and the self-attention replacement. Only [I] is masked: a compositional identity's [A] was masked by the
reference image's mask, which says nothing about the source image. On a DiT (``edit_attention_sites``) the same
effects go on every joint-attention block, acting on the target image's queries × the text keys (T5 or Qwen tokens
as the connected text encoder's tokenizer numbers them); self-attention replacement and the identity's mask are
refused there. ``replay`` runs
``core.s2edit.prompt_to_prompt_sampling`` from the inversion's noise with its per-step null-text embeddings at its
guidance, blending after each step when asked.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

import comfy.model_management
import latent_preview
import torch
from comfy.model_patcher import ModelPatcher

from ...core.attention.attention_store import AttentionStore
from ...core.s2edit.ddim_inversion import to_variance_preserving
from ...core.s2edit.local_blend import blend_latents, blend_mask, blend_start_step
from ...core.s2edit.prompt_to_prompt import (
    CrossAttentionEdit,
    alpha_runs,
    cross_replace_alpha,
    equalizer,
    parse_word_weights,
    self_replace_steps,
)
from ...core.s2edit.prompt_to_prompt_sampling import prompt_to_prompt_sample
from ..attention.attention_capture import AttentionCapture
from ..attention.attention_effect import PromptTarget, StepRange
from ..attention.cross_attention_patch import CrossAttentionLayer
from ..attention.dit_layers import DiTFamily
from ..attention.prompt_batch_edit import PromptBatchEdit
from ..attention.prompt_tokens import WordPositions, left_padded, locate_dit_words, locate_words, parse_words
from ..attention.self_attention_patch import add_self_attention_replace, self_replace_layers
from ..attention.word_attention_inputs import tag_conditioning
from ..common.prepared_model import GuiderNoisePredictor, cross_attention_of, run_prepared
from .edit_attention_sites import EditSites, edit_sites
from .identity import Identity
from .identity_token_mask import IdentityTokenMask, identity_token_mask
from .inversion import Inversion, check_conditioning, with_inverted_prompt_masks
from .inverted_prompt import check_inverted_prompt
from .prompt_to_prompt_tokens import PromptTokens, choose_controller, dit_prompt_tokens, prompt_tokens, token_mapping
from .prompt_to_prompt_windows import word_windows

BLEND_STRIDE = 32
"""Local blend reads the layers of 16×16 tokens at 512 px (the official ``down_cross[2:4] + up_cross[:3]``)."""


@dataclass(frozen=True)
class LocalBlendPlan:
    source_positions: tuple[int, ...]
    target_positions: tuple[int, ...]
    threshold: float
    start_step: int


@dataclass(frozen=True)
class EditPlan:
    conditioning: list
    target: PromptTarget
    controller: str
    edit: CrossAttentionEdit
    context_length: int
    cross_alpha: torch.Tensor
    self_steps: range
    blend: LocalBlendPlan | None
    identity_masks: tuple[tuple[int, IdentityTokenMask], ...]
    """[I]'s mask per image row of the batch (0 source, 1 target) whose prompt holds it."""


def _encode(clip, text: str, name: str) -> tuple[torch.Tensor, dict]:
    conditioning = clip.encode_from_tokens_scheduled(clip.tokenize(text))
    if len(conditioning) != 1:
        raise ValueError(f"{name}: the prompt encodes to {len(conditioning)} scheduled parts; give a plain prompt")
    return conditioning[0][0], conditioning[0][1]


def batched_conditioning(clip, source: str, target: str, tag: str) -> list:
    """One cond whose embedding (and pooled output) is the batch [source, target], carrying ``tag``."""
    source_embedding, options = _encode(clip, source, "source_text")
    target_embedding, target_options = _encode(clip, target, "target_text")
    options = dict(options)
    pooled, target_pooled = options.get("pooled_output"), target_options.get("pooled_output")
    if pooled is not None and target_pooled is not None:
        options["pooled_output"] = torch.cat([pooled, target_pooled])
    return tag_conditioning([[torch.cat([source_embedding, target_embedding]), options]], tag)


Locate = Callable[[object, str, str], WordPositions]
"""``locate(clip, prompt, words)``: the words' positions among the tokens the model attends to."""


def word_locator(dit: DiTFamily | None) -> Locate:
    """``locate_words`` for a UNet's CLIP chunks; on a DiT, its text sequence, left-padded as its model pads it."""
    if dit is None:
        return locate_words
    return lambda clip, text, words: left_padded(locate_dit_words(clip, text, words), dit.padded_text)


def _word_positions(locate: Locate, clip, text: str, word: str, name: str) -> list[int]:
    try:
        return locate(clip, text, word).all_positions
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None


def _find_word(locate: Locate, clip, text: str, word: str) -> tuple[list[int], str]:
    """The word's positions in the prompt, or no positions and the reason."""
    try:
        return locate(clip, text, word).all_positions, ""
    except ValueError as error:
        return [], str(error)


def _blend_plan(
    clip, source: PromptTokens, target: PromptTokens, *, words: str, threshold: float, steps: int, locate: Locate
) -> LocalBlendPlan | None:
    """Blend words are looked up in both prompts ("cat, tiger" for cat → tiger); each must be in one at least."""
    if not words.strip():
        return None
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"blend_threshold: expected a fraction of the map's maximum in (0, 1), got {threshold}")
    source_positions: set[int] = set()
    target_positions: set[int] = set()
    for word in parse_words(words):
        in_source, source_error = _find_word(locate, clip, source.text, word)
        in_target, target_error = _find_word(locate, clip, target.text, word)
        if not in_source and not in_target:
            raise ValueError(f"blend_words: in the source prompt, {source_error}; in the target prompt, {target_error}")
        source_positions.update(in_source)
        target_positions.update(in_target)
    return LocalBlendPlan(
        tuple(sorted(source_positions)), tuple(sorted(target_positions)), threshold, blend_start_step(steps)
    )


def plan_edit(
    clip,
    source_text: str,
    target_text: str,
    steps: int,
    *,
    controller: str,
    cross_replace: float,
    word_cross_replace: str,
    self_replace: float,
    word_weights: str,
    blend_words: str,
    blend_threshold: float,
    identity: Identity | None,
    dit: DiTFamily | None = None,
) -> EditPlan:
    """Validate the node's inputs and work out everything the patched replay needs; ``dit``: the model's DiT family
    (None for a UNet), whose text sequence the word positions index."""
    if identity is not None and dit is not None:
        raise ValueError(
            f"identity: S2Edit identities are trained on SD1.x/SDXL UNets; this model is a {dit.name} DiT: edit "
            "without the identity"
        )
    if identity is not None:
        first = identity.tokens[0].placeholder
        if first not in target_text:
            raise ValueError(f"target_text: the identity's token {first} is not in the target prompt")
        source_text, target_text = identity.expand(source_text), identity.expand(target_text)
        word_cross_replace, word_weights = identity.expand(word_cross_replace), identity.expand(word_weights)
        blend_words = identity.expand(blend_words)
    if dit is None:
        source = prompt_tokens(clip, source_text, "source_text")
        target = prompt_tokens(clip, target_text, "target_text")
    else:
        source = dit_prompt_tokens(clip, source_text, "source_text", dit.padded_text)
        target = dit_prompt_tokens(clip, target_text, "target_text", dit.padded_text)
    locate = word_locator(dit)
    kind = choose_controller(source, target, controller)
    mapper, alphas = token_mapping(source, target, kind)
    weights = parse_word_weights(word_weights)
    positions = {
        p: w for word, w in weights.items() for p in _word_positions(locate, clip, target_text, word, "word_weights")
    }
    cross_alpha = cross_replace_alpha(
        steps, target.length, cross_replace, word_windows(clip, target_text, word_cross_replace, locate)
    )
    self_steps = self_replace_steps(steps, self_replace)
    blend = _blend_plan(clip, source, target, words=blend_words, threshold=blend_threshold, steps=steps, locate=locate)
    row_masks = (identity_token_mask(clip, identity, source_text, "source_text"),) + (
        identity_token_mask(clip, identity, target_text, "target_text"),
    )
    identity_masks = tuple((row, mask) for row, mask in enumerate(row_masks) if mask is not None)
    tag = uuid.uuid4().hex
    return EditPlan(
        conditioning=batched_conditioning(clip, source_text, target_text, tag),
        target=PromptTarget(tag=tag),
        controller=kind,
        edit=CrossAttentionEdit(mapper, alphas, equalizer(target.length, positions) if positions else None),
        context_length=target.length,
        cross_alpha=cross_alpha,
        self_steps=self_steps,
        blend=blend,
        identity_masks=identity_masks,
    )


def check_plan_fits_inversion(plan: EditPlan, inversion: Inversion, source_text: str) -> None:
    """The plan's source row must replay the inversion: the same prompt, with [I] masked the same way."""
    embedding, options = plan.conditioning[0]
    source = {**options, "pooled_output": options["pooled_output"][:1]} if "pooled_output" in options else options
    check_inverted_prompt(inversion.prompt, [[embedding[:1], source]], "source_text", source_text)
    masked = dict(plan.identity_masks).get(0)
    inverted = inversion.prompt.identity_mask
    if masked is not None and inverted is None:
        raise ValueError(
            f"inversion: it was made without masking {masked.placeholder}, which the edit masks in both rows "
            "(S2Edit's spatial control): connect the identity, the CLIP and source_text to Null-Text Inversion too"
        )
    if inverted is not None and (masked is None or not masked.same_mask(inverted)):
        raise ValueError(
            f"identity: the inversion masked {inverted.placeholder} with its identity's object mask; connect the "
            "same identity here, so the edit masks it the same way"
        )


def blend_layers(layers: list[CrossAttentionLayer]) -> list[CrossAttentionLayer]:
    """The 16×16-at-512-px layers, or the coarsest the model has when it has none (small test models)."""
    strides = {layer.image_stride for layer in layers}
    if BLEND_STRIDE in strides:
        stride = BLEND_STRIDE
    else:
        stride = max((s for s in strides if s < BLEND_STRIDE), default=min(strides))
    return [layer for layer in layers if layer.image_stride == stride]


def check_joint_plan(plan: EditPlan, inversion: Inversion) -> None:
    """Refuse what a DiT's joint attention cannot do: self-attention replacement and the identity's UNet mask."""
    if plan.self_steps:
        raise ValueError(
            "self_replace: a DiT's image tokens attend to each other inside its joint attention, whose image-to-image "
            "part this edit does not replace; set self_replace to 0 (the cross-attention edit still keeps the "
            "source's layout)"
        )
    if inversion.prompt.identity_mask is not None:
        raise ValueError(
            "identity: S2Edit identities are trained on SD1.x/SDXL UNets and their mask acts on UNet "
            "cross-attention; this model is a DiT: edit without the identity"
        )


def patch_model(model: ModelPatcher, plan: EditPlan, inversion: Inversion) -> tuple[ModelPatcher, AttentionStore]:
    """A clone of ``model`` with the plan's attention edits; the store receives the blend layers' maps."""
    sites: EditSites = edit_sites(model)
    if sites.joint:
        check_joint_plan(plan, inversion)
    sigmas = inversion.schedule.sampling_sigmas()
    every_step = StepRange.from_steps(sigmas, range(inversion.schedule.steps))
    store = AttentionStore()
    patched = with_inverted_prompt_masks(model.clone(), inversion.prompt)
    for row, identity in plan.identity_masks:
        patched = sites.add(patched, identity.effect(plan.target, 2, row))
    if plan.blend is not None:
        capture = AttentionCapture(
            store=store, context_length=plan.context_length, heads=None, steps=every_step, target=plan.target
        )
        patched = sites.add(patched, capture, None if sites.joint else blend_layers(list(sites.layers)))
    for steps, columns in alpha_runs(plan.cross_alpha):
        edit = PromptBatchEdit(replace(plan.edit, columns=columns), StepRange.from_steps(sigmas, steps), plan.target)
        patched = sites.add(patched, edit)
    if plan.self_steps:
        self_layers = self_replace_layers(model, tuple(inversion.noise.shape[-2:]))
        patched = add_self_attention_replace(
            patched, StepRange.from_steps(sigmas, plan.self_steps), plan.target, self_layers
        )
    return patched, store


def _blender(plan: LocalBlendPlan, store: AttentionStore, masks: list) -> Callable:
    def after_step(step: int, x: torch.Tensor) -> torch.Tensor:
        if step < plan.start_step:
            return x
        grid = next(iter(store.layers.values())).grid
        maps = store.token_maps([plan.source_positions, plan.target_positions], grid)
        mask = blend_mask(torch.stack([maps[0, 0], maps[1, 1]]), tuple(x.shape[-2:]), plan.threshold)
        masks[:] = [mask[1]]
        return blend_latents(x, mask.to(x.device))

    return after_step


def sample_edit(
    patched: ModelPatcher, store: AttentionStore, plan: EditPlan, inversion: Inversion
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replay the batch [source, target] on the patched model: LATENT samples, and the last local-blend mask
    ``[1, h, w]`` at latent resolution (ones without blending)."""
    check_conditioning(inversion.negative, "inversion", patched)
    schedule = inversion.schedule
    nulls = inversion.null_embeddings or (None,) * schedule.steps
    progress = latent_preview.prepare_callback(patched, schedule.steps)
    masks: list[torch.Tensor] = []
    after_step = None if plan.blend is None else _blender(plan.blend, store, masks)

    def work(guider, model_options: dict, noise: torch.Tensor) -> torch.Tensor:
        predictor = GuiderNoisePredictor(guider, model_options)
        device = cross_attention_of(predictor.negative).device
        x0 = prompt_to_prompt_sample(
            predictor,
            noise,
            schedule,
            guidance=inversion.settings.guidance,
            nulls=[None if null is None else null.to(device) for null in nulls],
            after_step=after_step,
            on_step=lambda i, denoised: progress(i, denoised[1:], None, schedule.steps),
        )
        return to_variance_preserving(x0, schedule.sigmas[0])

    noise = inversion.noise.expand(2, *inversion.noise.shape[1:])
    samples = run_prepared(
        patched, plan.conditioning, inversion.negative, noise, sigmas=schedule.sampling_sigmas(), work=work
    )
    storage = comfy.model_management.intermediate_device()
    mask = masks[0].float() if masks else torch.ones(1, *samples.shape[-2:])
    return samples.to(storage), mask.to(storage)


def replay(model: ModelPatcher, plan: EditPlan, inversion: Inversion) -> tuple[torch.Tensor, torch.Tensor]:
    """``sample_edit`` on a clone of ``model`` patched for the plan; ``model`` itself is left as it was."""
    patched, store = patch_model(model, plan, inversion)
    return sample_edit(patched, store, plan, inversion)
