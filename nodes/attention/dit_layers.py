"""The joint-attention blocks of a ComfyUI DiT model, found from its diffusion model's class and attributes.

Families: Flux.1 / Kontext / Flux.2 (``comfy.ldm.flux.model.Flux``: double and single blocks), Qwen-Image and
Qwen-Image-Edit (``QwenImageTransformer2DModel``: double blocks) and SD3 / SD3.5 (``MMDiT``: joint blocks, replaced
as double blocks). Each block is reached through ``patches_replace["dit"][(kind, index)]``; the key itself gives the
block index, so families that do not write ``block_index`` into ``transformer_options`` (SD3) need no counter.
"""

from dataclasses import dataclass

from comfy.ldm.flux.model import Flux
from comfy.ldm.modules.diffusionmodules.mmdit import MMDiT
from comfy.ldm.qwen_image.model import QwenImageTransformer2DModel
from comfy.model_patcher import ModelPatcher

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
    """A supported DiT family and its blocks in execution order."""

    name: str
    blocks: tuple[DiTBlock, ...]


def _blocks(kind: str, count: int, heads: int, patch_size: int) -> tuple[DiTBlock, ...]:
    return tuple(DiTBlock(kind, i, heads, patch_size) for i in range(count))


def is_dit_model(model: ModelPatcher) -> bool:
    """Whether the model's diffusion model is a DiT of a supported family."""
    return isinstance(model.get_model_object("diffusion_model"), (Flux, QwenImageTransformer2DModel, MMDiT))


def dit_family(model: ModelPatcher) -> DiTFamily:
    """The model's DiT family and joint-attention blocks; an error naming the family for an unsupported model."""
    dit = model.get_model_object("diffusion_model")
    if isinstance(dit, Flux):
        heads, patch = dit.params.num_heads, dit.patch_size
        name = "Flux.2" if getattr(dit.params, "global_modulation", False) else "Flux.1/Kontext"
        double = _blocks("double_block", len(dit.double_blocks), heads, patch)
        return DiTFamily(name, double + _blocks("single_block", len(dit.single_blocks), heads, patch))
    if isinstance(dit, QwenImageTransformer2DModel):
        heads = dit.transformer_blocks[0].attn.heads
        return DiTFamily("Qwen-Image", _blocks("double_block", len(dit.transformer_blocks), heads, dit.patch_size))
    if isinstance(dit, MMDiT):
        heads = dit.joint_blocks[0].x_block.attn.num_heads
        return DiTFamily("SD3", _blocks("double_block", len(dit.joint_blocks), heads, dit.patch_size))
    raise ValueError(
        f"the attention effects do not handle this model family yet: {type(model.model).__name__} with a "
        f"{type(dit).__name__}; supported DiT families: {SUPPORTED_FAMILIES}; UNets: SD1.x, SD2.x, SDXL"
    )
