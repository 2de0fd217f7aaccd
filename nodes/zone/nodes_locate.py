"""ZONE's localisation: the rough edit region M_b from an instruction editor's attention or from an image difference.

PreciseEdit_InstructionLocator: record the attention ZONE reads the edit region from, while sampling (InstructPix2Pix,
or an instruction DiT: Qwen-Image-Edit, Flux Kontext, Flux.2).

PreciseEdit_EditRegionFromAttention: ZONE's rough edit mask M_b from the recorded start/end-token attention.

PreciseEdit_DifferenceLocator: the rough edit mask from where an editor changed the image.
"""

import torch
from comfy.model_patcher import ModelPatcher
from comfy.sd import CLIP

from ...core.attention.attention_store import AttentionStore
from ...core.zone.difference_locator import METRICS, difference_mask
from ...core.zone.edit_region import PAPER_THRESHOLD, RELEASED_THRESHOLD, attention_difference, edit_region
from ..attention.attention_capture import AttentionCapture
from ..attention.attention_effect import PromptTarget, StepRange
from ..attention.attention_preview import show_attention_on_node
from ..attention.cross_attention_patch import CrossAttentionLayer, add_cross_attention_effect, cross_attention_layers
from ..attention.layer_choice import LAYER_OPTIONS, choose_layers
from ..attention.nodes_attention import latent_to_image
from ..attention.prompt_tokens import clip_tokenizer
from ..common.comfy_node_api import io
from ..common.option_keys import Option, OptionKeys, all_valid
from ..common.socket_types import AttentionMaps
from .dit_instruction_attention import instruction_family, locate_on_dit
from .ip2p_model import require_instruct_pix2pix

# ZONE's branches [instruction + image, ∅ + image, ∅ + ∅] are the guider roles positive, middle and negative of
# DualCFGGuider (cond1, cond2, negative) and of Fused Instruct Guider.
BRANCHES: dict[str, tuple[str, ...]] = {
    "null_instruction": ("middle", "negative"),
    "middle": ("middle",),
    "negative": ("negative",),
    "positive": ("positive",),
    "all": ("positive", "middle", "negative"),
}


BRANCH_OPTIONS = OptionKeys(
    Option(
        "null_instruction",
        "∅+image and ∅+∅, the null-instruction branches (ZONE)",
        "null instruction: ∅+image and ∅+∅ (ZONE)",
    ),
    Option("middle", "∅+image, the middle branch", "∅+image (middle)"),
    Option("negative", "∅+∅, the negative branch", "∅+∅ (negative)"),
    Option("positive", "instruction+image, the positive branch", "instruction+image (positive)"),
    Option("all", "all three branches", "all three"),
)


DEFAULT_BRANCHES = "null_instruction"


DIT_BRANCH = "positive"


ZONE_LAYERS = "zone"


ZONE_LAYER_OPTIONS = OptionKeys(
    Option(
        ZONE_LAYERS,
        "the coarsest input/output layers (16×16 at 512 px)",
        "ZONE: coarsest input/output layers (16×16 at 512 px)",
    ),
    *LAYER_OPTIONS.options,
)


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
                "Makes an instruction editor record, during its next sampling run, the attention maps ZONE locates "
                "the edit with. InstructPix2Pix: the null-instruction branches, the 16×16 layers at 512 px. "
                "Qwen-Image-Edit, Flux Kontext, Flux.2: the instruction's tokens and the rest of the text as the "
                "target image's tokens attend to them (never the reference image's), in every joint-attention "
                "block, positive prompt. Averaged over heads and all steps as running means (memory does not grow "
                "with the step count). Feed the ATTENTION output to Edit Region From Attention."
            ),
            inputs=[
                io.Model.Input(
                    "model",
                    tooltip="An InstructPix2Pix model (8 input channels, Load Checkpoint), or a Qwen-Image-Edit, "
                    "Flux Kontext or Flux.2 model (Load Diffusion Model).",
                ),
                io.Clip.Input(
                    "clip",
                    tooltip="The model's text encoder: CLIP for InstructPix2Pix (to find the end-of-text token), "
                    "Qwen2.5-VL, T5 or Flux.2's for a DiT (to find the instruction's tokens).",
                ),
                io.String.Input(
                    "instruction",
                    default="",
                    multiline=True,
                    tooltip="The instruction exactly as encoded for the positive prompt, e.g. 'make the hat blue'.",
                ),
                io.Combo.Input(
                    "branches",
                    options=BRANCH_OPTIONS.keys,
                    default=DEFAULT_BRANCHES,
                    tooltip=BRANCH_OPTIONS.tooltip(
                        "Guidance branches to average: ZONE (released code) uses InstructPix2Pix's two "
                        "null-instruction ones, whose attention is edit-aware. A DiT's instruction is only in its "
                        "positive branch: choose positive."
                    ),
                ),
                io.Combo.Input(
                    "layers",
                    options=ZONE_LAYER_OPTIONS.keys,
                    default=ZONE_LAYERS,
                    tooltip=ZONE_LAYER_OPTIONS.tooltip(
                        "Layers by token-grid size; ZONE averages the input and output layers at 1/32 of the "
                        "image (16×16 at 512 px), never the middle block. A DiT has one token grid: every block is "
                        "recorded whatever the choice."
                    ),
                ),
            ],
            outputs=[
                io.Model.Output(display_name="MODEL", tooltip="The model that records attention while sampling."),
                AttentionMaps.Output(
                    display_name="ATTENTION",
                    tooltip="The start and end maps (start/end-of-text tokens; on a DiT the rest of the text and the "
                    "instruction's tokens) of the most recent sampling run with that model.",
                ),
            ],
        )

    @classmethod
    def validate_inputs(cls, branches: str | None = None, layers: str | None = None) -> bool | str:
        return all_valid(BRANCH_OPTIONS.validate("branches", branches), ZONE_LAYER_OPTIONS.validate("layers", layers))

    @classmethod
    def execute(cls, model, clip, instruction: str, branches: str, layers: str) -> io.NodeOutput:
        family = instruction_family(model)
        if family is None:
            recording, store = locate(model, end_token_position(clip, instruction), branches, layers)
        else:
            branches = BRANCH_OPTIONS.key("branches", branches)
            if branches != DIT_BRANCH:
                raise ValueError(
                    f"branches {branches!r}: a {family.name} model reads the instruction only in its positive "
                    f"branch (the negative prompt holds none of its tokens); set branches to {DIT_BRANCH!r}"
                )
            recording, store = locate_on_dit(model, family, clip, instruction)
        return io.NodeOutput(show_attention_on_node(recording, store), store)


def locate(model: ModelPatcher, end_position: int, branches: str, layers: str) -> tuple[ModelPatcher, AttentionStore]:
    """A clone of ``model`` recording the start and end token maps of ``branches`` on ``layers`` into one store.

    One capture per branch writes into the shared store, so each layer's running mean is over steps × branches.
    """
    require_instruct_pix2pix(model)
    branches = BRANCH_OPTIONS.key("branches", branches)
    layers = ZONE_LAYER_OPTIONS.key("layers", layers)
    available = cross_attention_layers(model)
    chosen = zone_layers(available) if layers == ZONE_LAYERS else choose_layers(available, layers)
    store = AttentionStore(words={START_TOKEN: [0], END_TOKEN: [end_position]})
    steps = StepRange.from_percent(model, 0.0, 1.0)
    patched = model
    for role in BRANCHES[branches]:
        capture = AttentionCapture(
            store=store, context_length=NULL_PROMPT_TOKENS, heads=None, steps=steps, target=PromptTarget(role=role)
        )
        patched = add_cross_attention_effect(patched, capture, chosen)
    return patched, store


RULES: dict[str, int | None] = {"released": RELEASED_THRESHOLD, "paper": PAPER_THRESHOLD, "custom": None}


RULE_OPTIONS = OptionKeys(
    Option("released", "D ≤ 54, as the released code computes it", "released code: D ≤ 54"),
    Option("paper", "D < 128, the paper's rule", "paper: D < 128"),
    Option("custom", "D < threshold", "custom: D < threshold"),
)


DEFAULT_RULE = "released"


def start_end_maps(store: AttentionStore) -> tuple[torch.Tensor, torch.Tensor]:
    """The start- and end-token maps ``[B, h, w]`` averaged over the recorded layers, on the finest recorded grid."""
    if not store.layers or START_TOKEN not in store.words or END_TOKEN not in store.words:
        raise ValueError(
            "attention: nothing was recorded. Sample with the MODEL output of Instruction Locator (through "
            "Fused Instruct Guider or DualCFGGuider for InstructPix2Pix, any sampler for a DiT) and connect that "
            "sampler's LATENT output to this node"
        )
    grid = max((entry.grid for entry in store.layers.values()), key=lambda g: g[0] * g[1])
    maps = store.token_maps([store.words[START_TOKEN], store.words[END_TOKEN]], grid)
    return maps[:, 0], maps[:, 1]


class EditRegionFromAttention(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_EditRegionFromAttention",
            display_name="Edit Region From Attention (ZONE)",
            category="Precise Edit/ZONE",
            description=(
                "ZONE's rough edit mask M_b: the start-token attention map minus the instruction's end-token map, "
                "each scaled to 0–255 by its maximum, resized to the image and thresholded (edit region where the "
                "difference D is small). Feed M_b to Region-IoU Select with the segments of the image ZONE segments: "
                "the edited image for a change or an addition, the original for a removal, where the object is gone "
                "from the edit (Image To Segment picks it from the Action Classifier's SEGMENT_ORIGINAL)."
            ),
            inputs=[
                AttentionMaps.Input("attention", tooltip="The ATTENTION output of Instruction Locator."),
                io.Latent.Input(
                    "latent",
                    tooltip="The latent sampled with the locator's model: orders this node after sampling and gives "
                    "the image size (8 pixels per latent pixel, 16 for Flux.2).",
                ),
                io.Combo.Input(
                    "rule",
                    options=RULE_OPTIONS.keys,
                    default=DEFAULT_RULE,
                    tooltip=RULE_OPTIONS.tooltip("The edit region: where the difference D is below the limit."),
                ),
                io.Int.Input(
                    "threshold",
                    default=PAPER_THRESHOLD,
                    min=1,
                    max=256,
                    tooltip="T of the custom rule on the 0–255 scale of D (unused by the other two rules).",
                ),
            ],
            outputs=[
                io.Mask.Output(display_name="MASK", tooltip="M_b [B, H, W]: 1 in the rough edit region."),
                io.Image.Output(display_name="DIFFERENCE", tooltip="D / 255 as a gray image, to pick a threshold."),
            ],
        )

    @classmethod
    def validate_inputs(cls, rule: str | None = None) -> bool | str:
        return RULE_OPTIONS.validate("rule", rule)

    @classmethod
    def execute(cls, attention: AttentionStore, latent: dict, rule: str, threshold: int) -> io.NodeOutput:
        rule = RULE_OPTIONS.key("rule", rule)
        bos, eos = start_end_maps(attention)
        samples = latent["samples"]
        if samples.shape[0] != bos.shape[0]:
            raise ValueError(
                f"latent has {samples.shape[0]} images but the attention was recorded for {bos.shape[0]}: connect "
                "the LATENT of the sampler that used the locator's model"
            )
        scale = latent_to_image(samples)
        size = (samples.shape[-2] * scale, samples.shape[-1] * scale)
        difference = attention_difference(bos, eos, size)
        limit = RULES[rule] if RULES[rule] is not None else threshold
        mask = edit_region(difference, limit)
        empty = [i for i in range(mask.shape[0]) if not mask[i].any()]
        if empty:
            low = difference[empty[0]].min().item()
            raise ValueError(
                f"the edit region M_b of image {empty[0]} is empty: no pixel has D < {limit} (D ranges from "
                f"{low:.0f} to {difference[empty[0]].max().item():.0f}). Use the custom rule with a threshold above "
                f"{low:.0f}, or check that the locator's model was the one sampled"
            )
        gray = (difference / 255.0).cpu()
        return io.NodeOutput(mask.float().cpu(), gray[..., None].expand(*gray.shape, 3).contiguous())


THRESHOLD_MODES = ["relative", "absolute"]


def image_pair(original: torch.Tensor, edited: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two IMAGE inputs as [B, C, H, W], checked to be the same size."""
    if original.dim() != 4 or edited.dim() != 4:
        raise ValueError(
            f"original and edited must be IMAGE [B, H, W, C]; got {tuple(original.shape)} and {tuple(edited.shape)}"
        )
    if original.shape[1:] != edited.shape[1:]:
        raise ValueError(
            f"original is {tuple(original.shape[1:])} (H, W, C) but edited is {tuple(edited.shape[1:])}: "
            "resize or crop them to the same size"
        )
    return original.movedim(-1, 1), edited.movedim(-1, 1)


class DifferenceLocator(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_DifferenceLocator",
            display_name="Difference Locator",
            category="Precise Edit/ZONE",
            description=(
                "Finds the rough edit region M_b of any editor (Flux Kontext, Qwen-Image-Edit, InstructPix2Pix, "
                "inpainting) from where its output differs from the original: per-pixel channel difference, "
                "Gaussian blur, threshold. Feed it to Region-IoU Select and the FFT Edge Smoother to keep every "
                "other pixel of the original."
            ),
            inputs=[
                io.Image.Input("original", tooltip="The image before editing."),
                io.Image.Input("edited", tooltip="The editor's output, same size as the original."),
                io.Combo.Input(
                    "metric",
                    options=list(METRICS),
                    default="max",
                    tooltip="Per-pixel difference: max over channels (catches hue changes), mean, or rms.",
                ),
                io.Float.Input(
                    "blur_sigma",
                    default=2.0,
                    min=0.0,
                    max=64.0,
                    step=0.1,
                    tooltip="Gaussian blur of the difference in pixels; merges scattered VAE noise into a low floor.",
                ),
                io.Float.Input(
                    "threshold",
                    default=0.25,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Pixels whose blurred difference exceeds this are edited (see threshold_mode).",
                ),
                io.Combo.Input(
                    "threshold_mode",
                    options=THRESHOLD_MODES,
                    default="relative",
                    tooltip="relative: a fraction of each image's largest difference. absolute: on the 0–1 scale.",
                ),
            ],
            outputs=[io.Mask.Output(display_name="MASK", tooltip="M_b, 1 where the image was edited.")],
        )

    @classmethod
    def execute(
        cls,
        original: torch.Tensor,
        edited: torch.Tensor,
        metric: str,
        blur_sigma: float,
        threshold: float,
        threshold_mode: str,
    ) -> io.NodeOutput:
        before, after = image_pair(original, edited)
        mask = difference_mask(
            before,
            after,
            metric=metric,
            blur_sigma=blur_sigma,
            threshold=threshold,
            relative=threshold_mode == "relative",
        )
        return io.NodeOutput(mask.float().cpu())


NODES = [InstructionLocator, EditRegionFromAttention, DifferenceLocator]
