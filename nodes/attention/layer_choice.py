"""Choosing cross-attention layers by token-grid resolution, as a fraction of the image size, and counting a
layer's tokens at a given latent size."""

from ..common.option_keys import Option, OptionKeys
from .cross_attention_patch import CrossAttentionLayer

LAYER_CHOICES: dict[str, int | None] = {"1_32": 32, "1_16": 16, "1_8": 8, "1_64": 64, "all": None}
LAYER_OPTIONS = OptionKeys(
    Option("1_32", "token grid 1/32 of the image (16×16 at 512 px)", "1/32 (16×16 at 512 px)"),
    Option("1_16", "token grid 1/16 of the image (32×32 at 512 px)", "1/16 (32×32 at 512 px)"),
    Option("1_8", "token grid 1/8 of the image (64×64 at 512 px)", "1/8 (64×64 at 512 px)"),
    Option("1_64", "token grid 1/64 of the image (8×8 at 512 px; SDXL and larger UNets)", "1/64 (8×8 at 512 px)"),
    Option("all", "every cross-attention layer"),
)
DEFAULT_LAYER_CHOICE = "1_32"


def grid_tokens(layer: CrossAttentionLayer, latent_hw: tuple[int, int]) -> float:
    """The layer's attention tokens for a latent of ``latent_hw``: h·w / 4^level (each downsampling halves both
    sides). Exact for sides divisible by 2^level; otherwise the geometric size, which ComfyUI's padded
    downsampling rounds up, so the ratio between two layers' counts is always a power of 4."""
    height, width = latent_hw
    return height * width / 4**layer.level


def choose_layers(layers: list[CrossAttentionLayer], choice: str) -> list[CrossAttentionLayer]:
    """The layers whose token grid is ``1/stride`` of the image for the chosen stride (all layers for "all")."""
    stride = LAYER_CHOICES[LAYER_OPTIONS.key("layers", choice)]
    chosen = [layer for layer in layers if stride is None or layer.image_stride == stride]
    if not chosen:
        available = sorted({f"1/{layer.image_stride}" for layer in layers}, key=lambda s: int(s[2:]))
        raise ValueError(
            f"layers: this model has no cross-attention layers at 1/{stride} of the image size; it has layers at "
            f"{', '.join(available)}"
        )
    return chosen
