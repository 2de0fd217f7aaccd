"""S2Edit's second stage: null-text inversion of the real image, its reconstruction, and the prompt-to-prompt edit.

PreciseEdit_NullTextInversion: invert a real image's latent into noise plus per-step null-text embeddings.

PreciseEdit_InversionReconstruct: sample back from an inversion to check how faithfully it reproduces the image.

PreciseEdit_PromptToPromptEdit: edit an inverted real image by changing its prompt (S2Edit §3.3 inference).
"""

import torch

from ..attention.dit_layers import dit_family_or_unet
from ..common.comfy_node_api import io
from ..common.option_keys import Option, OptionKeys
from ..common.socket_types import IdentityType, InvertedLatent
from .flow_model import check_invertible_model
from .identity import Identity
from .identity_token_mask import IdentityTokenMask, identity_token_mask
from .inversion import (
    MODE_OPTIONS,
    NULL_TEXT,
    Inversion,
    check_conditioning,
    check_inversion_fits,
    check_latent,
    invert,
    reconstruct,
)
from .inverted_prompt import conditioning_difference
from .prompt_to_prompt_replay import check_plan_fits_inversion, plan_edit, replay


def source_prompt(
    clip, source_text: str, identity: Identity | None, positive: list
) -> tuple[str, IdentityTokenMask | None]:
    """The caption of ``positive`` (checked: it must encode to ``positive``) and [I]'s mask in it, if any."""
    if not source_text.strip():
        if identity is not None:
            raise ValueError(
                "source_text: with an identity, give the caption that positive encodes ('a photo of a [I] lady'), "
                "so that the identity token can be found and masked"
            )
        return "", None
    if clip is None:
        raise ValueError("clip: connect the CLIP that encoded positive, to read source_text")
    text = source_text if identity is None else identity.expand(source_text)
    if identity is not None and f"embedding:{identity.tokens[0].embedding_name}" not in text.split():
        raise ValueError(
            f"source_text: the identity's token {identity.tokens[0].placeholder} is not in {source_text!r}"
        )
    encoded = clip.encode_from_tokens_scheduled(clip.tokenize(text))
    reason = conditioning_difference(encoded, positive)
    if reason:
        raise ValueError(f"source_text: {source_text!r} does not encode to the positive conditioning ({reason})")
    return source_text, identity_token_mask(clip, identity, text, "source_text")


class NullTextInversion(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_NullTextInversion",
            display_name="Null-Text Inversion",
            category="Precise Edit/S2Edit",
            description=(
                "Inverts the latent of a real image with deterministic DDIM under the source prompt, then (null-text "
                "mode) optimises the null-text embedding at every step so that sampling back from the inverted noise "
                "with classifier-free guidance reproduces the image (Mokady et al.). The fast modes skip the "
                "optimisation. A flow model (Flux, SD3, Qwen-Image: CONST sampling) is inverted along its own flow ODE "
                "on the simple scheduler's levels (rectified-flow inversion; mode guided). With an S2Edit identity, "
                "the identity token's cross-attention is masked by its object "
                "mask at every step, as in training and editing. Feed the result to Inversion Reconstruct, or to "
                "prompt-to-prompt editing, which check that they replay the prompt it was inverted under."
            ),
            inputs=[
                io.Model.Input(
                    "model",
                    tooltip="An ε-prediction model with a discrete schedule (SD1.x, SD2.x-base, SDXL), or a flow model "
                    "(Flux, SD3, Qwen-Image; after ModelSamplingFlux/SD3 when the workflow has one: the shift counts).",
                ),
                io.Conditioning.Input(
                    "positive",
                    tooltip="The source prompt: a caption of the image as it is (with the identity token for S2Edit).",
                ),
                io.Conditioning.Input(
                    "negative",
                    tooltip="The null text whose embedding is optimised: usually CLIP Text Encode of an empty prompt.",
                ),
                io.Latent.Input("latent", tooltip="The source image encoded with VAE Encode; one image."),
                io.Int.Input(
                    "steps",
                    default=50,
                    min=1,
                    max=500,
                    tooltip="DDIM steps of inversion and sampling (flow models: Euler steps of the simple scheduler).",
                ),
                io.Float.Input(
                    "guidance",
                    default=7.5,
                    min=0.0,
                    max=30.0,
                    step=0.1,
                    tooltip="Classifier-free guidance scale that the reconstruction and the edits will use (fixed "
                    "by the inversion). 7.5: plain null-text inversion (Mokady et al.); S2Edit identity edits: "
                    "3.5-5.5, the paper's best identity/edit trade-off. Flow models: their sampling CFG (Flux dev: "
                    "1, its guidance comes from FluxGuidance; SD3, Qwen-Image: about 4).",
                ),
                io.Int.Input(
                    "inner_steps",
                    default=10,
                    min=0,
                    max=100,
                    tooltip="At most this many Adam iterations on the null embedding per DDIM step (null-text mode).",
                ),
                io.Float.Input(
                    "epsilon",
                    default=1e-5,
                    min=0.0,
                    max=1.0,
                    step=1e-6,
                    round=1e-8,
                    tooltip="Early stop: a step's optimisation ends once its loss is below epsilon + 0.001·step/steps.",
                ),
                io.Combo.Input(
                    "mode",
                    options=MODE_OPTIONS.keys,
                    default=NULL_TEXT,
                    tooltip=MODE_OPTIONS.tooltip("How the null text is found for each step."),
                ),
                io.Clip.Input(
                    "clip",
                    optional=True,
                    tooltip="The CLIP that encoded positive (with the identity's LoRA): reads source_text.",
                ),
                io.String.Input(
                    "source_text",
                    default="",
                    multiline=True,
                    optional=True,
                    tooltip="The caption that positive encodes (S2Edit: with [I]). Checked against positive and kept, "
                    "so that an edit under another prompt is refused by name; needed with an identity.",
                ),
                IdentityType.Input(
                    "identity",
                    optional=True,
                    tooltip="From the S2Edit identity-token trainer: [I]'s cross-attention is masked by its object "
                    "mask at every step (spatial control), as the edit does. Needs clip and source_text.",
                ),
            ],
            outputs=[
                InvertedLatent.Output(
                    display_name="INVERSION",
                    tooltip="The inverted noise, the per-step null-text embeddings, the schedule and the settings.",
                ),
            ],
        )

    @classmethod
    def validate_inputs(cls, mode: str | None = None) -> bool | str:
        return MODE_OPTIONS.validate("mode", mode)

    @classmethod
    def execute(
        cls,
        model,
        positive: list,
        negative: list,
        latent: dict,
        steps: int,
        guidance: float,
        inner_steps: int,
        epsilon: float,
        mode: str,
        clip=None,
        source_text: str = "",
        identity: Identity | None = None,
    ) -> io.NodeOutput:
        mode = MODE_OPTIONS.key("mode", mode)
        check_invertible_model(model)
        check_conditioning(positive, "positive", model)
        check_conditioning(negative, "negative", model)
        samples: torch.Tensor = check_latent(latent, model)
        text, mask = source_prompt(clip, source_text, identity, positive)
        inversion = invert(
            model,
            positive,
            negative,
            samples,
            steps=steps,
            guidance=guidance,
            inner_steps=inner_steps,
            epsilon=epsilon,
            mode=mode,
            source_text=text,
            identity_mask=mask,
        )
        return io.NodeOutput(inversion)


class InversionReconstruct(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_InversionReconstruct",
            display_name="Inversion Reconstruct",
            category="Precise Edit/S2Edit",
            description=(
                "Replays guided DDIM sampling from an inversion's noise with its per-step null-text embeddings (or "
                "its negative prompt in the fast modes) at the inversion's guidance; for a flow model this is the "
                "euler sampler on the simple scheduler's levels. With the source prompt the "
                "result should match the source latent: decode both and compare to judge the inversion. The identity "
                "token is masked as in the inversion."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The model the inversion was made with (patches may be added)."),
                InvertedLatent.Input("inversion", tooltip="From Null-Text Inversion."),
                io.Conditioning.Input(
                    "positive",
                    tooltip="The source prompt the inversion was made under (the same conditioning); another prompt "
                    "is refused: edit with Prompt-to-Prompt Edit.",
                ),
            ],
            outputs=[io.Latent.Output(display_name="LATENT", tooltip="The reconstructed latent; decode with the VAE.")],
        )

    @classmethod
    def execute(cls, model, inversion: Inversion, positive: list) -> io.NodeOutput:
        check_inversion_fits(inversion, model)
        check_conditioning(positive, "positive", model)
        return io.NodeOutput({"samples": reconstruct(model, inversion, positive)})


CONTROLLERS = ("auto", "replace", "refine")


SOURCE_AND_EDIT = "source_and_edit"


EDIT_ONLY = "edit_only"


OUTPUT_OPTIONS = OptionKeys(
    Option(SOURCE_AND_EDIT, "the latent batch [source reconstruction, edit]", "source and edit"),
    Option(EDIT_ONLY, "the edit alone", "edit only"),
)


class PromptToPromptEdit(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_PromptToPromptEdit",
            display_name="Prompt-to-Prompt Edit",
            category="Precise Edit/S2Edit",
            description=(
                "Edits the image of a Null-Text Inversion by replaying guided DDIM from its noise with the source and "
                "the target prompt in one batch, the target's cross-attention maps taken from the source's "
                "(prompt-to-prompt: word replacement, refinement, re-weighting, self-attention injection and local "
                "blending). On a DiT (Flux.1/Kontext, Flux.2, Qwen-Image, SD3; inverted as a flow model) the target's "
                "image-to-text attention in every joint-attention block is taken from the source's. With an S2Edit "
                "identity, the identity token's attention stays inside its object mask in "
                "both prompts, as in the inversion. Refuses a source prompt other than the one the inversion was made "
                "under."
            ),
            inputs=[
                io.Model.Input(
                    "model",
                    tooltip="The model the inversion was made with (with the identity's LoRA): an SD1.x/SDXL UNet or "
                    "a Flux.1/Kontext, Flux.2, Qwen-Image or SD3 DiT.",
                ),
                io.Clip.Input(
                    "clip",
                    tooltip="The CLIP / text encoder that encodes and tokenizes both prompts (CLIP, T5, Qwen2.5-VL; "
                    "embeddings too).",
                ),
                InvertedLatent.Input("inversion", tooltip="From Null-Text Inversion of the source image."),
                io.String.Input(
                    "source_text",
                    default="",
                    multiline=True,
                    tooltip="The caption the inversion was made with (S2Edit: with [I], e.g. 'a photo of a [I] lady').",
                ),
                io.String.Input(
                    "target_text",
                    default="",
                    multiline=True,
                    tooltip="The edited caption: swap words ('a [I] lady with a smile') or add/remove words.",
                ),
                io.Combo.Input(
                    "controller",
                    options=list(CONTROLLERS),
                    default="auto",
                    tooltip="replace: words swapped one for one; refine: words added or removed; auto: replace when "
                    "both prompts have as many words, refine otherwise.",
                ),
                io.Float.Input(
                    "cross_replace",
                    default=0.8,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Fraction of the steps (from the first) whose cross-attention comes from the source. "
                    "0.8 as in the P2P/S2Edit examples; PIE-Bench uses 0.4. The default window of every token "
                    "without its own window in word_cross_replace.",
                ),
                io.String.Input(
                    "word_cross_replace",
                    default="",
                    optional=True,
                    tooltip="Own cross-replace windows for target words, as fractions of the steps: 'smile: 0.4' "
                    "(the first 40 %), 'red hair: 0.1-0.6' (from 10 % to 60 %); comma-separated. Empty: every "
                    "word follows cross_replace.",
                ),
                io.Float.Input(
                    "self_replace",
                    default=0.5,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Fraction of the steps whose self-attention comes from the source, in the layers with "
                    "at most 1/4 of the finest attention grid's tokens (SD1.x: 32², 16², 8² at 512 px; SDXL: its 32² "
                    "layers at 1024 px). 0.5 as in the P2P examples; PIE-Bench uses 0.6. DiTs: 0 (their image tokens "
                    "attend to each other inside the joint attention, which is not replaced).",
                ),
                io.String.Input(
                    "word_weights",
                    default="",
                    tooltip="Re-weight target words' attention inside the cross-replace steps, e.g. 'smile:2.0, "
                    "glasses:0.5'; with an identity its placeholders too ('[A]:1.5'). Empty: none.",
                ),
                io.String.Input(
                    "blend_words",
                    default="",
                    tooltip="Local blend: words of either prompt ('cat, tiger'; with an identity its placeholders "
                    "too, '[I]') whose region may change; the rest keeps the source. Empty: no blending.",
                ),
                io.Float.Input(
                    "blend_threshold",
                    default=0.3,
                    min=0.01,
                    max=0.99,
                    step=0.01,
                    tooltip="Local blend: a pixel changes where the words' attention exceeds this fraction of its max.",
                ),
                io.Combo.Input(
                    "output",
                    options=OUTPUT_OPTIONS.keys,
                    default=SOURCE_AND_EDIT,
                    tooltip=OUTPUT_OPTIONS.tooltip("What the LATENT output holds."),
                ),
                IdentityType.Input(
                    "identity",
                    optional=True,
                    tooltip="From the S2Edit identity-token trainer: its placeholders ([I], [A]) in the prompts are "
                    "its embeddings, and [I]'s object mask confines its attention in both prompts at every step, as "
                    "in the inversion ([A] of a compositional identity is not masked: its mask is the reference "
                    "image's).",
                ),
            ],
            outputs=[
                io.Latent.Output(display_name="LATENT", tooltip="The edited latent(s); decode with the VAE."),
                io.Mask.Output(
                    display_name="BLEND_MASK",
                    tooltip="Where local blending let the edit change the image (all ones without blend words).",
                ),
            ],
        )

    @classmethod
    def validate_inputs(cls, output: str | None = None) -> bool | str:
        return OUTPUT_OPTIONS.validate("output", output)

    @classmethod
    def execute(
        cls,
        model,
        clip,
        inversion: Inversion,
        source_text: str,
        target_text: str,
        controller: str,
        cross_replace: float,
        self_replace: float,
        word_weights: str,
        blend_words: str,
        blend_threshold: float,
        output: str,
        identity: Identity | None = None,
        word_cross_replace: str = "",
    ) -> io.NodeOutput:
        output = OUTPUT_OPTIONS.key("output", output)
        check_inversion_fits(inversion, model)
        plan = plan_edit(
            clip,
            source_text,
            target_text,
            inversion.schedule.steps,
            controller=controller,
            cross_replace=cross_replace,
            word_cross_replace=word_cross_replace,
            self_replace=self_replace,
            word_weights=word_weights,
            blend_words=blend_words,
            blend_threshold=blend_threshold,
            identity=identity,
            dit=dit_family_or_unet(model),
        )
        check_plan_fits_inversion(plan, inversion, source_text)
        samples, mask = replay(model, plan, inversion)
        if output == EDIT_ONLY:
            samples = samples[1:]
        scale = 8
        image_mask = mask.repeat_interleave(scale, -2).repeat_interleave(scale, -1)
        return io.NodeOutput({"samples": samples}, image_mask)


NODES = [NullTextInversion, InversionReconstruct, PromptToPromptEdit]
