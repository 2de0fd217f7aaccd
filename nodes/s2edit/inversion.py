"""PE_INVERSION: DDIM / null-text or rectified-flow inversion of a latent on a ComfyUI model, and the guided replay.

``invert`` runs ``core.s2edit.ddim_inversion`` on an ε-prediction model or ``core.s2edit.flow_inversion`` on a flow
model (``flow_model.is_flow_model``: CONST sampling, by feature, not family) and, in null-text mode (ε-models only),
``core.s2edit.null_text_inversion``, on the model prepared as for sampling (``prepared_model``), under
``torch.inference_mode(False)`` with cloned inputs and the UNet's weights aliased for autograd
(``differentiable_weights``). ``reconstruct`` replays guided DDIM sampling from the inverted noise (on a flow model
the same step is the flow ODE's Euler step, v̂ in place of ε̂); prompt-to-prompt editing builds on the same replay.
In guided mode the inversion follows the guided prediction the replay uses (its guidance and negative), so a flow
model's round trip is the plain ODE's.

The inversion keeps the positive prompt it ran under (``InvertedPrompt``) and, for S2Edit, masks the identity token
[I]'s cross-attention in it at every step (spatial control, as in training); replays mask it the same way and
refuse another source prompt.
"""

import uuid
from dataclasses import dataclass, replace

import comfy.model_management
import latent_preview
import torch
from comfy.model_patcher import ModelPatcher

from ...core.s2edit.ddim_inversion import (
    DDIMSchedule,
    EpsilonPredictor,
    ddim_invert,
    ddim_schedule,
    to_variance_preserving,
)
from ...core.s2edit.flow_inversion import flow_invert, flow_schedule
from ...core.s2edit.null_text_inversion import (
    NullTextResult,
    NullTextSettings,
    classifier_free_guidance,
    guided_ddim_sample,
    optimise_null_text,
)
from ..attention.attention_effect import PromptTarget
from ..attention.cross_attention_patch import add_cross_attention_effect, cross_attention_layers
from ..attention.word_attention_inputs import tag_conditioning
from ..common.differentiable_weights import with_differentiable_weights
from ..common.option_keys import Option, OptionKeys
from ..common.prepared_model import GuiderNoisePredictor, cross_attention_of, require_gradients, run_prepared
from .flow_model import check_invertible_model
from .identity_token_mask import IdentityTokenMask
from .inverted_prompt import InvertedPrompt, check_inverted_prompt

NULL_TEXT = "null_text"
NEGATIVE_PROMPT = "negative_prompt"
PLAIN_DDIM = "plain_ddim"
GUIDED = "guided"
MODES = (NULL_TEXT, NEGATIVE_PROMPT, PLAIN_DDIM, GUIDED)
MODE_OPTIONS = OptionKeys(
    Option(
        NULL_TEXT, "null-text inversion, optimised: faithful, slow (ε-prediction models only)", "null-text (optimised)"
    ),
    Option(
        NEGATIVE_PROMPT, "the source prompt replaces the null text (no optimisation, fast)", "negative-prompt (fast)"
    ),
    Option(
        PLAIN_DDIM,
        "inverted without guidance, replayed with the negative as given (fast; drifts at high guidance)",
        "plain DDIM (fast)",
    ),
    Option(
        GUIDED,
        "inverted with the guidance and negative the replay uses (fast; flow models: faithful, their usual choice)",
    ),
)


@dataclass(frozen=True, kw_only=True)
class Inversion:
    """What PE_INVERSION carries from the inversion to the replay.

    ``noise`` is x_T in ComfyUI's latent convention (as LATENT["samples"]); ``schedule`` the DDIM schedule (for a flow
    model the ``simple`` scheduler's levels, ``core.s2edit.flow_inversion.flow_schedule``); ``flow``: whether the
    inverting model was a flow model;
    ``negative`` the CONDITIONING that plays the null prompt in guidance. In null-text mode ``optimisation`` holds
    the per-step null-text embeddings that replace its text embedding, with their losses and iteration counts.
    ``unet_evaluations`` counts the per-image UNet forward passes of inversion and optimisation together.
    ``prompt`` is the positive prompt inverted under, with the identity mask applied to it.
    """

    noise: torch.Tensor
    schedule: DDIMSchedule
    negative: list
    mode: str
    settings: NullTextSettings
    optimisation: NullTextResult | None
    unet_evaluations: int
    prompt: InvertedPrompt
    flow: bool = False

    @property
    def null_embeddings(self) -> tuple[torch.Tensor, ...] | None:
        """The null text's embedding for each sampling step (σ_N → σ_{N−1} first), or None to keep ``negative``."""
        return None if self.optimisation is None else self.optimisation.null_embeddings


def _context_width(model: ModelPatcher) -> int | None:
    config = getattr(model.model, "model_config", None)
    return None if config is None else config.unet_config.get("context_dim")


def check_conditioning(conditioning: list, name: str, model: ModelPatcher) -> None:
    """Non-empty, finite text embeddings as wide as the model's cross-attention context."""
    if not conditioning:
        raise ValueError(f"{name}: the conditioning is empty; connect the output of a CLIP Text Encode")
    width = _context_width(model)
    for embedding, _ in conditioning:
        if not isinstance(embedding, torch.Tensor) or embedding.ndim != 3:
            raise ValueError(f"{name}: expected text embeddings [batch, tokens, width], got {embedding!r:.80}")
        if width is not None and embedding.shape[-1] != width:
            raise ValueError(
                f"{name}: text embeddings of width {embedding.shape[-1]} do not fit this model, whose "
                f"cross-attention expects {width} (SD1.x 768, SD2.x 1024, SDXL 2048); encode the prompt with the "
                "CLIP loaded with this model"
            )
        if not torch.isfinite(embedding).all():
            raise ValueError(f"{name}: the text embedding contains NaN or infinite values")


def check_latent(latent: dict, model: ModelPatcher) -> torch.Tensor:
    """The single-image latent of the source, with as many channels as the model's latent space (and, for a model
    with video latents such as Qwen-Image, one frame)."""
    samples = latent["samples"]
    video = getattr(model.model.latent_format, "latent_dimensions", 2) == 3
    layout = "[batch, channels, 1 frame, height, width]" if video else "[batch, channels, height, width]"
    if samples.is_nested or samples.ndim != (5 if video else 4) or (video and samples.shape[2] != 1):
        raise ValueError(f"latent: expected an image latent {layout}, got {tuple(samples.shape)}")
    if samples.shape[0] != 1:
        raise ValueError(
            f"latent: inversion works on one image at a time, the latent batch has {samples.shape[0]}; "
            "pick one with Latent From Batch"
        )
    channels = model.model.latent_format.latent_channels
    if samples.shape[1] != channels:
        raise ValueError(f"latent: {samples.shape[1]} channels, this model's latents have {channels}")
    if not torch.isfinite(samples).all():
        raise ValueError("latent: the latent contains NaN or infinite values")
    return samples


def _clone_conditioning(conditioning: list) -> list:
    """Normal-tensor copies of the embeddings (they come in as inference tensors), options copied shallowly."""
    return [[embedding.clone(), dict(options)] for embedding, options in conditioning]


def with_inverted_prompt_masks(model: ModelPatcher, prompt: InvertedPrompt) -> ModelPatcher:
    """``model`` with [I] masked in the conds tagged as the inverted prompt (``model`` itself without a mask)."""
    if prompt.identity_mask is None:
        return model
    effect = prompt.identity_mask.effect(PromptTarget(tag=prompt.tag))
    return add_cross_attention_effect(model, effect, cross_attention_layers(model))


def _inversion_prediction(predictor: GuiderNoisePredictor, mode: str, guidance: float) -> EpsilonPredictor:
    """What the inversion integrates: the guided prediction in guided mode (w ≠ 1), the conditional one otherwise."""
    if mode != GUIDED or guidance == 1.0:
        return predictor.conditional

    def guided(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        conditional, unconditional = predictor.both(x, sigma, None)
        return classifier_free_guidance(unconditional, conditional, guidance)

    return guided


def invert(
    model: ModelPatcher,
    positive: list,
    negative: list,
    samples: torch.Tensor,
    *,
    steps: int,
    guidance: float,
    inner_steps: int,
    epsilon: float,
    mode: str,
    source_text: str = "",
    identity_mask: IdentityTokenMask | None = None,
) -> Inversion:
    """Invert the source latent ``samples`` under ``positive`` (see the module and ``core`` docstrings).

    ``source_text``: the caption ``positive`` encodes, kept for error messages. ``identity_mask``: [I]'s spatial
    control, applied to ``positive`` (and to the null text when it is ``positive``, in negative-prompt mode).
    """
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
    if steps < 1:
        raise ValueError(f"steps: at least 1 step is needed, got {steps}")
    flow = check_invertible_model(model)
    if flow and mode == NULL_TEXT:
        raise ValueError(
            "mode: null-text optimisation is for ε-prediction models; this flow model inverts along its own ODE: "
            f"choose {GUIDED} (inverted with the guidance and negative of the replay), {NEGATIVE_PROMPT} or "
            f"{PLAIN_DDIM}"
        )
    if mode == NULL_TEXT and len(negative) != 1:
        raise ValueError(
            f"negative: null-text inversion optimises one null-text embedding, but the conditioning has "
            f"{len(negative)} entries (e.g. from Conditioning Combine); connect a single CLIP Text Encode"
        )
    storage = comfy.model_management.intermediate_device()
    tag = uuid.uuid4().hex
    kept = [[embedding.to(storage), options] for embedding, options in tag_conditioning(positive, tag)]
    prompt = InvertedPrompt(kept, tag, source_text, identity_mask)
    unconditional = kept if mode == NEGATIVE_PROMPT else negative
    masked = with_inverted_prompt_masks(model, prompt)
    optimising = mode == NULL_TEXT
    total = 2 * steps if optimising else steps
    progress = latent_preview.prepare_callback(model, total)
    settings = NullTextSettings(guidance=guidance, inner_steps=inner_steps, epsilon=epsilon)
    results = {}
    with torch.inference_mode(False), torch.enable_grad():
        # Created in normal mode, the schedule's tensors are ones autograd may save for the backward pass.
        table = model.get_model_object("model_sampling").sigmas
        schedule = flow_schedule(table, steps) if flow else ddim_schedule(table, steps)
        invert_ode = flow_invert if flow else ddim_invert

        def work(guider, model_options: dict, z0: torch.Tensor) -> torch.Tensor:
            if optimising:
                require_gradients(model_options, "null-text inversion")
            predictor = GuiderNoisePredictor(guider, model_options)
            prediction = _inversion_prediction(predictor, mode, guidance)
            trajectory = invert_ode(prediction, z0, schedule, lambda i, x0: progress(i, x0, None, total))
            if optimising:
                null = cross_attention_of(predictor.negative).float()
                results["null_text"] = optimise_null_text(
                    predictor,
                    trajectory,
                    schedule,
                    null=null,
                    settings=settings,
                    on_step=lambda i, x0: progress(steps + i, x0, None, total),
                )
            return trajectory[-1]

        noise = run_prepared(
            with_differentiable_weights(masked) if optimising else masked,
            _clone_conditioning(kept),
            _clone_conditioning(unconditional),
            samples.clone(),
            sigmas=schedule.sampling_sigmas(),
            work=work,
        )
    optimisation = results.get("null_text")
    evaluations = steps * samples.shape[0] * (2 if mode == GUIDED and guidance != 1.0 else 1)
    if optimisation is not None:
        evaluations += optimisation.unet_evaluations
        optimisation = replace(
            optimisation,
            null_embeddings=tuple(null.to(storage) for null in optimisation.null_embeddings),
            reconstruction=optimisation.reconstruction.to(storage),
        )
    return Inversion(
        noise=noise.to(storage),
        schedule=schedule,
        negative=unconditional,
        mode=mode,
        settings=settings,
        optimisation=optimisation,
        unet_evaluations=evaluations,
        prompt=prompt,
        flow=flow,
    )


def check_inversion_fits(inversion: Inversion, model: ModelPatcher) -> None:
    """The replaying model must be of the inverting model's kind (ε or flow), with its noise schedule (a flow model's
    shift included), latent channels and context width."""
    sampling = model.get_model_object("model_sampling")
    kinds = {False: "an ε-prediction", True: "a flow"}
    flow = check_invertible_model(model)
    if flow != inversion.flow:
        raise ValueError(
            f"model: the inversion was made with {kinds[inversion.flow]} model, this is {kinds[flow]} model; replay "
            "with the model that made the inversion"
        )
    table = sampling.sigmas.detach().float().cpu()
    timesteps = inversion.schedule.timesteps
    if int(timesteps.max()) >= len(table) or not torch.allclose(
        table[timesteps], inversion.schedule.sigmas[1:], rtol=1e-4
    ):
        shift = (
            " (a flow model's shift: ModelSamplingFlux's width and height, ModelSamplingSD3's shift)" if flow else ""
        )
        raise ValueError(
            f"model: its noise schedule{shift} differs from the one of the model the inversion was made with"
        )
    channels = model.model.latent_format.latent_channels
    if inversion.noise.shape[1] != channels:
        raise ValueError(
            f"inversion: its latent has {inversion.noise.shape[1]} channels, this model's latents have {channels}"
        )
    width = _context_width(model)
    if inversion.null_embeddings and width is not None and inversion.null_embeddings[0].shape[-1] != width:
        raise ValueError(
            f"inversion: its null-text embeddings have width {inversion.null_embeddings[0].shape[-1]}, this "
            f"model's cross-attention expects {width}: replay with the model that made the inversion"
        )


def reconstruct(model: ModelPatcher, inversion: Inversion, positive: list) -> torch.Tensor:
    """Guided DDIM sampling from the inverted noise with the stored null embeddings; a LATENT's ``samples``.

    ``positive`` must be the prompt the inversion was made under; [I] is masked in it as during the inversion.
    """
    check_inverted_prompt(inversion.prompt, positive, "positive")
    model = with_inverted_prompt_masks(model, inversion.prompt)
    positive = tag_conditioning(positive, inversion.prompt.tag)
    schedule = inversion.schedule
    nulls = inversion.null_embeddings or (None,) * schedule.steps
    progress = latent_preview.prepare_callback(model, schedule.steps)

    def work(guider, model_options: dict, noise: torch.Tensor) -> torch.Tensor:
        predictor = GuiderNoisePredictor(guider, model_options)
        device = cross_attention_of(predictor.negative).device
        x0 = guided_ddim_sample(
            predictor,
            noise,
            schedule,
            guidance=inversion.settings.guidance,
            nulls=[None if null is None else null.to(device) for null in nulls],
            on_step=lambda i, denoised: progress(i, denoised, None, schedule.steps),
        )
        return to_variance_preserving(x0, schedule.sigmas[0])

    samples = run_prepared(
        model, positive, inversion.negative, inversion.noise, sigmas=schedule.sampling_sigmas(), work=work
    )
    return samples.to(comfy.model_management.intermediate_device())
