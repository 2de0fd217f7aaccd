"""The joint-attention blocks of a ComfyUI DiT model, found from its diffusion model's class and attributes.

Families: Flux.1 / Kontext / Flux.2 (``comfy.ldm.flux.model.Flux``: double and single blocks), Qwen-Image and
Qwen-Image-Edit (``QwenImageTransformer2DModel``: double blocks) and SD3 / SD3.5 (``MMDiT``: joint blocks, replaced
as double blocks). Each block is reached through ``patches_replace["dit"][(kind, index)]``; the key itself gives the
block index, so families that do not write ``block_index`` into ``transformer_options`` (SD3) need no counter.
"""

from dataclasses import dataclass

import comfy.model_base
from comfy.ldm.flux.model import Flux
from comfy.ldm.modules.diffusionmodules.mmdit import MMDiT
from comfy.ldm.qwen_image.model import QwenImageTransformer2DModel
from comfy.model_patcher import ModelPatcher

DIT_CLASSES = (Flux, QwenImageTransformer2DModel, MMDiT)
FLUX2_TEXT_TOKENS = 512
SUPPORTED_FAMILIES = "Flux.1, Flux Kontext, Flux.2, Qwen-Image, Qwen-Image-Edit, SD3/SD3.5"


@dataclass(frozen=True)
class DiTBlock:
    """One joint-attention block: its ``patches_replace["dit"]`` key, its head count and the model's patch size."""

    kind: str
    index: int
    heads: int
    patch_size: int

    @property
    def key(self) -> tuple[str, int]:
        return (self.kind, self.index)

    @property
    def name(self) -> str:
        return f"{self.kind}_{self.index}"


@dataclass(frozen=True)
class DiTFamily:
    """A supported DiT family, its blocks in execution order, the text length its model pads prompts to (0: none;
    Flux.2 left-pads the text encoder's output to 512 tokens in ``comfy.model_base.Flux2.extra_conds``), and whether
    the prompt's tokens end the text sequence (whatever comes before them: padding, Qwen-Image-Edit's vision
    tokens)."""

    name: str
    blocks: tuple[DiTBlock, ...]
    padded_text: int = 0
    text_at_end: bool = False


def _blocks(kind: str, count: int, heads: int, patch_size: int) -> tuple[DiTBlock, ...]:
    return tuple(DiTBlock(kind, i, heads, patch_size) for i in range(count))


def is_dit_model(model: ModelPatcher) -> bool:
    """Whether the model's diffusion model is a DiT of a supported family."""
    return isinstance(model.get_model_object("diffusion_model"), DIT_CLASSES)


def dit_family_or_unet(model: ModelPatcher) -> DiTFamily | None:
    """The model's DiT family, None for a UNet (which has ``input_blocks``, ``middle_block`` and
    ``output_blocks``); for any other model the error of ``dit_family``."""
    dit = model.get_model_object("diffusion_model")
    if not isinstance(dit, DIT_CLASSES) and all(
        hasattr(dit, name) for name in ("input_blocks", "middle_block", "output_blocks")
    ):
        return None
    return dit_family(model)


def dit_family(model: ModelPatcher) -> DiTFamily:
    """The model's DiT family and joint-attention blocks; an error naming the family for an unsupported model."""
    dit = model.get_model_object("diffusion_model")
    if isinstance(dit, Flux):
        heads, patch = dit.params.num_heads, dit.patch_size
        flux2 = isinstance(model.model, comfy.model_base.Flux2)
        double = _blocks("double_block", len(dit.double_blocks), heads, patch)
        blocks = double + _blocks("single_block", len(dit.single_blocks), heads, patch)
        if flux2:
            return DiTFamily("Flux.2", blocks, FLUX2_TEXT_TOKENS, text_at_end=True)
        return DiTFamily("Flux.1/Kontext", blocks)
    if isinstance(dit, QwenImageTransformer2DModel):
        heads = dit.transformer_blocks[0].attn.heads
        blocks = _blocks("double_block", len(dit.transformer_blocks), heads, dit.patch_size)
        return DiTFamily("Qwen-Image", blocks, text_at_end=True)
    if isinstance(dit, MMDiT):
        heads = dit.joint_blocks[0].x_block.attn.num_heads
        return DiTFamily("SD3", _blocks("double_block", len(dit.joint_blocks), heads, dit.patch_size))
    raise ValueError(
        f"the attention effects do not handle this model family yet: {type(model.model).__name__} with a "
        f"{type(dit).__name__}; supported DiT families: {SUPPORTED_FAMILIES}; UNets: SD1.x, SD2.x, SDXL"
    )
