"""ZONE's localisation on an instruction DiT (Qwen-Image-Edit, Flux Kontext, Flux.2 reference edits).

ZONE reads the edit region of InstructPix2Pix from two cross-attention maps averaged over steps: the start-of-text
token's (the sink that takes attention everywhere but on the edit) and the instruction's end-of-text token's (which
concentrates on the edit), M_b = {Â_start − Â_end small}. An instruction DiT has no start-of-text token and no
separate cross-attention: its image tokens attend over one joint sequence [text, target image, reference images].
The counterparts recorded here, per joint-attention block, from the target image's queries ``i`` (never the
reference-image tokens after them) to the text keys, normalised over all keys (``core.attention.joint_attention``):

    A_end[i]   = Σ_{t ∈ instruction} A[i, t]       the instruction's own tokens,
    A_start[i] = Σ_{t ∈ text \\ instruction} A[i, t] the rest of the text: the template, end and padding tokens
                                                     (and Qwen-Image-Edit's vision tokens of the reference image),

averaged over heads and, as running means, over the sampling steps and blocks. Edit Region From Attention then turns
them into M_b exactly as on InstructPix2Pix.

Where the instruction sits in the text the DiT sees is fixed by the text encoder's template, not by the prompt's
length: Flux's T5 tokens start with the instruction and are padded after it, so its columns count from the start;
Qwen-Image(-Edit) ends every prompt with ``<|im_end|>\\n<|im_start|>assistant\\n`` after the instruction (and its
edit encoders put the reference image's vision tokens, of a length the tokenizer cannot know, before it), and Flux.2
left-pads the text to 512 tokens, so theirs count from the end.
"""

from dataclasses import dataclass

import torch
from comfy.model_patcher import ModelPatcher
from comfy.sd import CLIP

from ...core.attention.attention_store import AttentionStore
from ...core.attention.word_tokens import Token
from ..attention.attention_effect import NONE, AttentionEffect, ChangedColumns, EffectContext, PromptTarget, StepRange
from ..attention.dit_attention_patch import add_dit_attention_effect
from ..attention.dit_layers import DiTFamily, dit_family_or_unet
from ..attention.prompt_tokens import dit_text_parts

START_MAP = "start"
END_MAP = "end"
MAP_COLUMNS = {START_MAP: [0], END_MAP: [1]}


@dataclass(frozen=True)
class InstructionSpan:
    """The instruction's ``tokens`` text columns: ``before`` columns after the text's start, or, when ``before`` is
    None, ``after`` columns before the text's end."""

    tokens: int
    before: int | None
    after: int

    def columns(self, text_tokens: int) -> slice:
        """The instruction's columns in a text of ``text_tokens`` tokens."""
        start = self.before if self.before is not None else text_tokens - self.after - self.tokens
        if start < 0 or start + self.tokens > text_tokens:
            raise ValueError(
                f"the instruction's {self.tokens} tokens do not fit the {text_tokens} text tokens the model attends "
                "to: encode the positive prompt from the same instruction with the model's own text encoder"
            )
        return slice(start, start + self.tokens)


def _unpadded(tokens: list[Token], pad: int | None) -> list[Token]:
    end = len(tokens)
    while end > 0 and isinstance(tokens[end - 1], int) and tokens[end - 1] == pad:
        end -= 1
    return tokens[:end]


def _common_prefix(a: list[Token], b: list[Token]) -> int:
    count = 0
    for x, y in zip(a, b, strict=False):
        if not (isinstance(x, int) and isinstance(y, int) and x == y):
            break
        count += 1
    return count


def instruction_span(clip: CLIP, instruction: str) -> InstructionSpan:
    """Where ``instruction``'s tokens sit in the text a DiT attends to, from the CLIP's own tokenizer and template:
    the sequence for the instruction against the one for an empty prompt (same template, nothing between)."""
    parts, empty_parts = dit_text_parts(clip, instruction), dit_text_parts(clip, "")
    if len(parts) != 1 or len(empty_parts) != 1:
        raise ValueError("the Instruction Locator needs a single-encoder text encoder (T5, Qwen2.5-VL, Flux.2's)")
    pad = parts[0].tokenizer.pad_token
    full = parts[0].tokens
    tokens, empty = _unpadded(full, pad), _unpadded(empty_parts[0].tokens, pad)
    before = _common_prefix(tokens, empty)
    count = len(tokens) - len(empty)
    if count <= 0:
        raise ValueError(f"instruction {instruction!r} has no tokens: give the instruction the positive prompt encodes")
    padded_after = len(full) > len(tokens)
    return InstructionSpan(count, before if padded_after else None, len(empty) - before)


@dataclass(frozen=True, eq=False, kw_only=True)
class InstructionAttention(AttentionEffect):
    """Record ``A_start`` and ``A_end`` (see the module docstring) of the targeted prompt's target-image queries into
    ``store`` as two columns, ``start`` (0) and ``end`` (1), one running mean per block. Only reads; the store is
    cleared when a sampling run begins."""

    store: AttentionStore
    span: InstructionSpan
    steps: StepRange
    target: PromptTarget

    def begin_run(self) -> None:
        self.store.reset()

    def apply(self, probabilities: torch.Tensor, context: EffectContext) -> tuple[torch.Tensor, ChangedColumns]:
        probs = probabilities.index_select(0, context.selected_rows())
        end = probs[..., self.span.columns(probs.shape[-1])].sum(-1)
        start = probs.sum(-1) - end
        self.store.add(context.layer.name, torch.stack([start, end], dim=-1), context.grid)
        return probabilities, NONE


INSTRUCTION_FAMILIES = ("Qwen-Image", "Flux.1/Kontext", "Flux.2")
SUPPORTED_MODELS = "InstructPix2Pix (and MagicBrush) UNets, Qwen-Image-Edit, Flux Kontext, Flux.2 reference edits"


def instruction_family(model: ModelPatcher) -> DiTFamily | None:
    """The model's instruction-DiT family, None for a UNet; an error naming any other model and the supported ones."""
    try:
        family = dit_family_or_unet(model)
    except ValueError:
        family = None
    else:
        if family is None or family.name in INSTRUCTION_FAMILIES:
            return family
    name = family.name if family is not None else type(model.model).__name__
    dit = type(model.get_model_object("diffusion_model")).__name__
    raise ValueError(f"the Instruction Locator does not handle {name} ({dit}) models; supported: {SUPPORTED_MODELS}")


def locate_on_dit(
    model: ModelPatcher, family: DiTFamily, clip: CLIP, instruction: str
) -> tuple[ModelPatcher, AttentionStore]:
    """A clone of ``model`` recording ``A_start``/``A_end`` of the positive prompt in every joint-attention block at
    every step, into one store."""
    store = AttentionStore(words=dict(MAP_COLUMNS))
    effect = InstructionAttention(
        store=store,
        span=instruction_span(clip, instruction),
        steps=StepRange.from_percent(model, 0.0, 1.0),
        target=PromptTarget(role="positive"),
    )
    return add_dit_attention_effect(model, effect, family.blocks), store
