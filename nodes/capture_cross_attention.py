"""PreciseEdit_CaptureCrossAttention: record chosen words' cross-attention maps while sampling."""

from ..core.attention_store import AttentionStore
from .comfy_node_api import io
from .cross_attention_patch import AttentionCapture, StepRange, add_cross_attention_effect, cross_attention_layers
from .layer_choice import DEFAULT_LAYER_CHOICE, LAYER_CHOICES, choose_layers
from .prompt_tokens import locate_words
from .socket_types import AttentionMaps
from .word_attention_inputs import (
    conditioning_input,
    conditioning_output,
    prompt_inputs,
    prompt_target,
    step_range_inputs,
    target_input,
)


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
                    options=list(LAYER_CHOICES),
                    default=DEFAULT_LAYER_CHOICE,
                    tooltip="Layers by token-grid size relative to the image; 1/32 is the 16×16 convention of "
                    "prompt-to-prompt at 512 px.",
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
        return io.NodeOutput(add_cross_attention_effect(model, effect, chosen), store, conditioning_out)
