"""PreciseEdit_AttentionMaskInjector: confine chosen words' cross-attention to a spatial mask."""

import torch

from .comfy_node_api import io
from .cross_attention_patch import StepRange, TokenMask, add_cross_attention_effect, cross_attention_layers
from .mask_input import spatial_mask_batch
from .prompt_tokens import locate_words
from .word_attention_inputs import (
    conditioning_input,
    conditioning_output,
    prompt_inputs,
    prompt_target,
    step_range_inputs,
    target_input,
)


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
                *prompt_inputs("mask"),
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
                *step_range_inputs("masking"),
                target_input(["positive", "negative", "all"], "masked"),
                io.Boolean.Input(
                    "renormalize", default=False, tooltip="Rescale each query's attention to sum to 1 after masking."
                ),
                conditioning_input("mask"),
            ],
            outputs=[
                io.Model.Output(display_name="MODEL", tooltip="The model with the attention mask applied."),
                conditioning_output("mask"),
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
