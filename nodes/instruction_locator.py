"""PreciseEdit_InstructionLocator: record the cross-attention ZONE reads the edit region from, while sampling."""

from comfy.model_patcher import ModelPatcher
from comfy.sd import CLIP

from ..core.attention_store import AttentionStore
from .comfy_node_api import io
from .cross_attention_patch import (
    AttentionCapture,
    CrossAttentionLayer,
    PromptTarget,
    StepRange,
    add_cross_attention_effect,
    cross_attention_layers,
)
from .ip2p_model import require_instruct_pix2pix
from .layer_choice import LAYER_CHOICES, choose_layers
from .prompt_tokens import clip_tokenizer
from .socket_types import AttentionMaps

# ZONE's branches [instruction + image, ∅ + image, ∅ + ∅] are the guider roles positive, middle and negative of
# DualCFGGuider (cond1, cond2, negative) and of Fused Instruct Guider.
BRANCHES: dict[str, tuple[str, ...]] = {
    "null instruction: ∅+image and ∅+∅ (ZONE)": ("middle", "negative"),
    "∅+image (middle)": ("middle",),
    "∅+∅ (negative)": ("negative",),
    "instruction+image (positive)": ("positive",),
    "all three": ("positive", "middle", "negative"),
}
DEFAULT_BRANCHES = "null instruction: ∅+image and ∅+∅ (ZONE)"
ZONE_LAYERS = "ZONE: coarsest input/output layers (16×16 at 512 px)"
NULL_PROMPT_TOKENS = 77
START_TOKEN = "start"
END_TOKEN = "end"


def zone_layers(layers: list[CrossAttentionLayer]) -> list[CrossAttentionLayer]:
    """The input- and output-block layers at the coarsest token grid (the middle block left out, as ZONE's
    ``from_where=['up', 'down']``): SD1.x's down_blocks.2 and up_blocks.1 at 1/32 of the image size."""
    outer = [layer for layer in layers if layer.key[0] != "middle"]
    if not outer:
        raise ValueError("this UNet has no cross-attention layers outside its middle block")
    stride = max(layer.image_stride for layer in outer)
    return [layer for layer in outer if layer.image_stride == stride]


def end_token_position(clip: CLIP, instruction: str) -> int:
    """Index of the instruction's end-of-text token (ZONE's last token L), found with the CLIP's tokenizer."""
    tokenizer = clip_tokenizer(clip)
    chunk = [entry[0] for entry in tokenizer.tokenize_with_weights(instruction)[0]]
    start = 1 if tokenizer.start_token is not None else 0
    for position in range(start, len(chunk)):
        if isinstance(chunk[position], int) and chunk[position] == tokenizer.end_token:
            return position
    return len(chunk) - 1


class InstructionLocator(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_InstructionLocator",
            display_name="Instruction Locator (ZONE)",
            category="Precise Edit/ZONE",
            description=(
                "Makes an InstructPix2Pix model record, during its next sampling run, the cross-attention maps "
                "ZONE locates the edit with: the null-instruction branches, the 16×16 layers at 512 px, averaged "
                "over heads and all steps as running means (memory does not grow with the step count). Feed the "
                "ATTENTION output to Edit Region From Attention."
            ),
            inputs=[
                io.Model.Input(
                    "model", tooltip="An InstructPix2Pix model (8 input channels), e.g. from Load Checkpoint."
                ),
                io.Clip.Input(
                    "clip", tooltip="The model's CLIP, to find where the instruction's end-of-text token is."
                ),
                io.String.Input(
                    "instruction",
                    multiline=True,
                    tooltip="The instruction exactly as encoded for the positive prompt, e.g. 'make the hat blue'.",
                ),
                io.Combo.Input(
                    "branches",
                    options=list(BRANCHES),
                    default=DEFAULT_BRANCHES,
                    tooltip="Guidance branches to average: ZONE (released code) uses the two null-instruction ones, "
                    "whose attention is edit-aware.",
                ),
                io.Combo.Input(
                    "layers",
                    options=[ZONE_LAYERS, *LAYER_CHOICES],
                    default=ZONE_LAYERS,
                    tooltip="Layers by token-grid size; ZONE averages the input and output layers at 1/32 of the "
                    "image (16×16 at 512 px), never the middle block.",
                ),
            ],
            outputs=[
                io.Model.Output(display_name="MODEL", tooltip="The model that records attention while sampling."),
                AttentionMaps.Output(
                    display_name="ATTENTION",
                    tooltip="The start and end-of-text token maps of the most recent sampling run with that model.",
                ),
            ],
        )

    @classmethod
    def execute(cls, model, clip, instruction: str, branches: str, layers: str) -> io.NodeOutput:
        return io.NodeOutput(*locate(model, end_token_position(clip, instruction), branches, layers))


def locate(model: ModelPatcher, end_position: int, branches: str, layers: str) -> tuple[ModelPatcher, AttentionStore]:
    """A clone of ``model`` recording the start and end token maps of ``branches`` on ``layers`` into one store.

    One capture per branch writes into the shared store, so each layer's running mean is over steps × branches.
    """
    require_instruct_pix2pix(model)
    if branches not in BRANCHES:
        raise ValueError(f"unknown branches {branches!r}; expected one of {list(BRANCHES)}")
    available = cross_attention_layers(model)
    chosen = zone_layers(available) if layers == ZONE_LAYERS else choose_layers(available, layers)
    store = AttentionStore(words={START_TOKEN: [0], END_TOKEN: [end_position]})
    steps = StepRange.from_percent(model, 0.0, 1.0)
    patched = model
    for role in BRANCHES[branches]:
        capture = AttentionCapture(store, NULL_PROMPT_TOKENS, None, steps, PromptTarget(role=role))
        patched = add_cross_attention_effect(patched, capture, chosen)
    return patched, store
