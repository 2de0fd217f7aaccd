"""PreciseEdit_PromptToPromptEdit: edit an inverted real image by changing its prompt (S2Edit §3.3 inference)."""

from .comfy_node_api import io
from .identity import Identity
from .inversion import Inversion, check_inversion_fits
from .prompt_to_prompt_edit import check_plan_fits_inversion, plan_edit, replay
from .socket_types import IdentityType, InvertedLatent

CONTROLLERS = ("auto", "replace", "refine")
SOURCE_AND_EDIT = "source and edit"
EDIT_ONLY = "edit only"


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
                "blending). With an S2Edit identity, the identity token's attention stays inside its object mask in "
                "both prompts, as in the inversion. Refuses a source prompt other than the one the inversion was made "
                "under."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The model the inversion was made with (with the identity's LoRA)."),
                io.Clip.Input("clip", tooltip="The CLIP that encodes and tokenizes both prompts (and embeddings)."),
                InvertedLatent.Input("inversion", tooltip="From Null-Text Inversion of the source image."),
                io.String.Input(
                    "source_text",
                    multiline=True,
                    tooltip="The caption the inversion was made with (S2Edit: with [I], e.g. 'a photo of a [I] lady').",
                ),
                io.String.Input(
                    "target_text",
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
                    "layers at 1024 px). 0.5 as in the P2P examples; PIE-Bench uses 0.6.",
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
                    options=[SOURCE_AND_EDIT, EDIT_ONLY],
                    default=SOURCE_AND_EDIT,
                    tooltip="The latent batch [source reconstruction, edit], or the edit alone.",
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
        if output not in (SOURCE_AND_EDIT, EDIT_ONLY):
            raise ValueError(f"output: expected {SOURCE_AND_EDIT!r} or {EDIT_ONLY!r}, got {output!r}")
        check_inversion_fits(inversion, model)
        plan = plan_edit(
            clip,
            source_text,
            target_text,
            inversion.schedule.steps,
            controller,
            cross_replace,
            word_cross_replace,
            self_replace,
            word_weights,
            blend_words,
            blend_threshold,
            identity,
        )
        check_plan_fits_inversion(plan, inversion, source_text)
        samples, mask = replay(model, plan, inversion)
        if output == EDIT_ONLY:
            samples = samples[1:]
        scale = 8
        image_mask = mask.repeat_interleave(scale, -2).repeat_interleave(scale, -1)
        return io.NodeOutput({"samples": samples}, image_mask)
