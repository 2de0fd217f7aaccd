"""Nodes that act on the cross-attention of a prompt's words: mask it, capture it, turn it into masks.

PreciseEdit_AttentionMaskInjector: confine chosen words' cross-attention to a spatial mask.

PreciseEdit_CaptureCrossAttention: record chosen words' cross-attention maps while sampling.

PreciseEdit_AttentionToMask: turn captured cross-attention into one mask per word.

On a DiT (Flux.1/Kontext/Flux.2, Qwen-Image(-Edit), SD3) the same effects act on the image-to-text block of every
joint-attention block (``dit_attention_patch``); the words' positions come from the DiT's text encoder.
"""

import torch

from ...core.attention.attention_store import AttentionStore
from ...core.attention.heatmap import heatmap
from ..common.comfy_node_api import io
from ..common.mask_input import spatial_mask_batch
from ..common.socket_types import AttentionMaps
from .attention_capture import AttentionCapture
from .attention_effect import StepRange
from .attention_preview import show_attention_on_node
from .cross_attention_patch import add_cross_attention_effect, cross_attention_layers
from .dit_attention_patch import add_dit_attention_effect
from .dit_layers import DiTFamily, dit_family_or_unet
from .layer_choice import DEFAULT_LAYER_CHOICE, LAYER_OPTIONS, choose_layers
from .prompt_tokens import WordPositions, left_padded, locate_dit_words, locate_words
from .token_mask_effect import TokenMask
from .word_attention_inputs import (
    conditioning_input,
    conditioning_output,
    prompt_inputs,
    prompt_target,
    step_range_inputs,
    target_input,
)


def dit_word_positions(
    family: DiTFamily, clip, text: str, words: str, conditioning: list | None = None
) -> WordPositions:
    """The words' key columns in the DiT's joint attention. Families whose prompt ends the text sequence (Qwen-Image,
    Flux.2) count them from its end: the connected conditioning gives its length (Qwen-Image-Edit puts the input
    image's vision tokens before the prompt), then the model's own padding."""
    positions = locate_dit_words(clip, text, words)
    if family.text_at_end and conditioning is not None:
        positions = left_padded(positions, max(embedding.shape[1] for embedding, _ in conditioning))
    return left_padded(positions, family.padded_text)


class AttentionMaskInjector(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_AttentionMaskInjector",
            display_name="Attention Mask Injector",
            category="Precise Edit/attention",
            description=(
                "Multiplies the cross-attention probabilities of chosen words by a spatial mask in every "
                "cross-attention layer of the UNet (S2Edit's spatial control, A*[I] = A[I] ⊙ M), or in the "
                "image-to-text part of every joint-attention block of a DiT (Flux, Flux.2, Qwen-Image, SD3), so the "
                "words act only "
                "inside the mask. Regional prompting: chain injectors, one per word and mask. Chains with other "
                "attention patches (IP-Adapter, other packs' DiT attention overrides)."
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
                    "renormalize",
                    default=False,
                    tooltip="Rescale each query's attention to sum to 1 after masking (UNet models only).",
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
        family = dit_family_or_unet(model)
        if family is not None:
            if renormalize:
                raise ValueError(
                    f"renormalize is not available on {family.name}: the joint attention's rows also hold the image "
                    "tokens, which the mask does not touch; turn renormalize off"
                )
            positions = dit_word_positions(family, clip, text, words, conditioning)
        else:
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
        if family is not None:
            return io.NodeOutput(add_dit_attention_effect(model, effect, family.blocks), conditioning_out)
        return io.NodeOutput(add_cross_attention_effect(model, effect, layers), conditioning_out)


def parse_heads(heads: str, count: int) -> tuple[int, ...] | None:
    """Heads "all" → None; "0, 3" → (0, 3), checked against the layers' head count."""
    if heads.strip().lower() in ("", "all"):
        return None
    try:
        chosen = tuple(sorted({int(h) for h in heads.split(",") if h.strip()}))
    except ValueError:
        raise ValueError(f"heads must be 'all' or comma-separated head numbers, got {heads!r}") from None
    if not chosen or chosen[0] < 0 or chosen[-1] >= count:
        raise ValueError(f"heads {heads!r}: this model's layers have heads 0 to {count - 1}")
    return chosen


class CaptureCrossAttention(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_CaptureCrossAttention",
            display_name="Capture Cross-Attention",
            category="Precise Edit/attention",
            description=(
                "Records the cross-attention maps of chosen words during the next sampling run with the returned "
                "model: running means over steps and heads per layer (memory does not grow with the step count). "
                "Feed the attention output and the sampled latent to Attention To Mask."
            ),
            inputs=[
                *prompt_inputs("record"),
                io.Combo.Input(
                    "layers",
                    options=LAYER_OPTIONS.keys,
                    default=DEFAULT_LAYER_CHOICE,
                    tooltip=LAYER_OPTIONS.tooltip(
                        "Layers by token-grid size relative to the image; 1/32 is the 16×16 convention of "
                        "prompt-to-prompt at 512 px. On a DiT every block sees the same grid: all blocks are recorded."
                    ),
                ),
                io.String.Input("heads", default="all", tooltip="'all', or comma-separated head numbers to average."),
                *step_range_inputs("recording"),
                target_input(["positive", "negative"], "recorded"),
                conditioning_input("record"),
            ],
            outputs=[
                io.Model.Output(display_name="MODEL", tooltip="The model that records attention while sampling."),
                AttentionMaps.Output(
                    display_name="ATTENTION", tooltip="The maps of the most recent sampling run with that model."
                ),
                conditioning_output("record"),
            ],
        )

    @classmethod
    def validate_inputs(cls, layers: str | None = None) -> bool | str:
        return LAYER_OPTIONS.validate("layers", layers)

    @classmethod
    def execute(
        cls,
        model,
        clip,
        text: str,
        words: str,
        layers: str,
        heads: str,
        start_percent: float,
        end_percent: float,
        target: str,
        conditioning: list | None = None,
    ) -> io.NodeOutput:
        family = dit_family_or_unet(model)
        if family is not None:
            head_count = min(block.heads for block in family.blocks)
            positions = dit_word_positions(family, clip, text, words, conditioning)
        else:
            chosen = choose_layers(cross_attention_layers(model), layers)
            head_count = min(layer.heads for layer in chosen)
            positions = locate_words(clip, text, words)
        target_spec, conditioning_out = prompt_target(target, conditioning)
        store = AttentionStore(words=positions.words)
        effect = AttentionCapture(
            store=store,
            context_length=positions.context_length,
            heads=parse_heads(heads, head_count),
            steps=StepRange.from_percent(model, start_percent, end_percent),
            target=target_spec,
        )
        if family is not None:
            patched = add_dit_attention_effect(model, effect, family.blocks)
        else:
            patched = add_cross_attention_effect(model, effect, chosen)
        recording = show_attention_on_node(patched, store)
        return io.NodeOutput(recording, store, conditioning_out)


LATENT_TO_IMAGE = 8
FLUX2_LATENT_CHANNELS = 128
FLUX2_LATENT_TO_IMAGE = 16


def latent_to_image(samples: torch.Tensor) -> int:
    """Image pixels per latent pixel: 16 for Flux.2's 128-channel latents (``EmptyFlux2LatentImage``), else 8."""
    return FLUX2_LATENT_TO_IMAGE if samples.shape[1] == FLUX2_LATENT_CHANNELS else LATENT_TO_IMAGE


def normalise_maps(maps: torch.Tensor) -> torch.Tensor:
    """Divide each ``[H, W]`` map by its maximum, so every word's strongest point is 1."""
    peak = maps.flatten(-2).amax(-1)[..., None, None]
    return maps / peak.clamp_min(torch.finfo(maps.dtype).tiny)


class AttentionToMask(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_AttentionToMask",
            display_name="Attention To Mask",
            category="Precise Edit/attention",
            description=(
                "Averages the captured cross-attention over the recorded layers, sums each word's tokens, "
                "normalises each map to a maximum of 1 and resizes it to the image size. One mask per word and "
                "image (word-major), plus a heat-map preview."
            ),
            inputs=[
                AttentionMaps.Input("attention", tooltip="From Capture Cross-Attention."),
                io.Latent.Input(
                    "latent",
                    tooltip="The latent sampled with the capturing model: orders this node after sampling "
                    "and gives the image size.",
                ),
                io.Float.Input(
                    "threshold",
                    default=0.0,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="0 keeps the soft normalised map; above 0 the mask is 1 where the map ≥ threshold.",
                ),
            ],
            outputs=[
                io.Mask.Output(display_name="MASK", tooltip="[words × images, H, W] masks at image resolution."),
                io.Image.Output(display_name="HEATMAP", tooltip="The normalised maps as colour heat maps."),
            ],
        )

    @classmethod
    def execute(cls, attention: AttentionStore, latent: dict, threshold: float) -> io.NodeOutput:
        if not attention.layers:
            raise ValueError(
                "no attention was recorded: sample with the MODEL output of Capture Cross-Attention before this node "
                "(connect that sampler's LATENT here)"
            )
        scale = latent_to_image(latent["samples"])
        height, width = (side * scale for side in latent["samples"].shape[-2:])
        maps = normalise_maps(attention.word_maps((height, width)))
        soft = maps.transpose(0, 1).reshape(-1, height, width).cpu()
        mask = (soft >= threshold).float() if threshold > 0 else soft
        return io.NodeOutput(mask, heatmap(soft))


NODES = [AttentionMaskInjector, CaptureCrossAttention, AttentionToMask]
