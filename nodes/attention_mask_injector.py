"""PreciseEdit_AttentionMaskInjector: confine chosen words' cross-attention to a spatial mask."""

import uuid

import torch
from comfy_api.latest import io
from comfy_execution.graph_utils import ExecutionBlocker

from .cross_attention_patch import (
    COND_TAGS_KEY,
    PromptTarget,
    StepRange,
    TokenMask,
    add_cross_attention_effect,
    cross_attention_layers,
)
from .mask_input import spatial_mask_batch
from .prompt_tokens import locate_words

TARGETS = ["positive", "negative", "all"]


def tag_conditioning(conditioning: list, tag: str) -> list:
    """A copy of ``conditioning`` whose entries carry ``tag``, so effects with that tag apply to them only."""
    tagged = []
    for embedding, options in conditioning:
        options = options.copy()
        options[COND_TAGS_KEY] = tuple(options.get(COND_TAGS_KEY, ())) + (tag,)
        tagged.append([embedding, options])
    return tagged


def prompt_target(target: str, conditioning: list | None) -> tuple[PromptTarget, list | ExecutionBlocker]:
    """The effect's target, and the CONDITIONING output: tagged input, or a blocker explaining how to use it."""
    if conditioning is None:
        return PromptTarget(role=target), ExecutionBlocker(
            "this CONDITIONING output is only set when a conditioning is connected to the node's input"
        )
    tag = uuid.uuid4().hex
    return PromptTarget(tag=tag), tag_conditioning(conditioning, tag)


class AttentionMaskInjector(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_AttentionMaskInjector",
            display_name="Attention Mask Injector",
            category="Precise Edit/attention",
            description=(
                "Multiplies the cross-attention probabilities of chosen words by a spatial mask in every "
                "cross-attention layer of the UNet (S2Edit's spatial control, A*[I] = A[I] ⊙ M), so the words act "
                "only inside the mask. Chains with other attention patches (IP-Adapter) and with further injectors."
            ),
            inputs=[
                io.Model.Input("model", tooltip="SD1.x, SD2.x or SDXL UNet model (InstructPix2Pix variants too)."),
                io.Clip.Input("clip", tooltip="The CLIP that encodes the prompt, to find the words' token positions."),
                io.String.Input(
                    "text", multiline=True, tooltip="The prompt exactly as it is encoded (embedding:name allowed)."
                ),
                io.String.Input(
                    "words", default="", tooltip="Word(s) or phrase(s) of the prompt to mask, comma-separated."
                ),
                io.Mask.Input(
                    "mask", tooltip="Where the words may attend: 1 keeps, 0 removes. One mask or one per image."
                ),
                io.Float.Input(
                    "strength",
                    default=1.0,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="1 multiplies by the mask exactly; lower values blend toward no masking: 1 − s(1 − M).",
                ),
                io.Float.Input(
                    "start_percent",
                    default=0.0,
                    min=0.0,
                    max=1.0,
                    step=0.001,
                    tooltip="Sampling progress where masking starts.",
                ),
                io.Float.Input(
                    "end_percent",
                    default=1.0,
                    min=0.0,
                    max=1.0,
                    step=0.001,
                    tooltip="Sampling progress where masking ends.",
                ),
                io.Combo.Input(
                    "target",
                    options=TARGETS,
                    default="positive",
                    tooltip="Which prompt of the sampler is masked when no conditioning is connected below.",
                ),
                io.Boolean.Input(
                    "renormalize", default=False, tooltip="Rescale each query's attention to sum to 1 after masking."
                ),
                io.Conditioning.Input(
                    "conditioning",
                    optional=True,
                    tooltip="Connect the prompt's conditioning (and use the output) to mask only that conditioning.",
                ),
            ],
            outputs=[
                io.Model.Output(display_name="MODEL", tooltip="The model with the attention mask applied."),
                io.Conditioning.Output(
                    display_name="CONDITIONING", tooltip="The connected conditioning, marked as the one to mask."
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        model,
        clip,
        text: str,
        words: str,
        mask: torch.Tensor,
        strength: float,
        start_percent: float,
        end_percent: float,
        target: str,
        renormalize: bool,
        conditioning: list | None = None,
    ) -> io.NodeOutput:
        layers = cross_attention_layers(model)
        positions = locate_words(clip, text, words)
        target_spec, conditioning_out = prompt_target(target, conditioning)
        effect = TokenMask(
            tokens=tuple(positions.all_positions),
            context_length=positions.context_length,
            mask=spatial_mask_batch(mask),
            strength=strength,
            renormalize=renormalize,
            steps=StepRange.from_percent(model, start_percent, end_percent),
            target=target_spec,
        )
        return io.NodeOutput(add_cross_attention_effect(model, effect, layers), conditioning_out)
