"""Choosing cross-attention layers by token-grid resolution, as a fraction of the image size, and counting a
layer's tokens at a given latent size."""

from .cross_attention_patch import CrossAttentionLayer

LAYER_CHOICES: dict[str, int | None] = {
    "1/32 (16×16 at 512 px)": 32,
    "1/16 (32×32 at 512 px)": 16,
    "1/8 (64×64 at 512 px)": 8,
    "1/64 (8×8 at 512 px)": 64,
    "all": None,
}
DEFAULT_LAYER_CHOICE = "1/32 (16×16 at 512 px)"


def grid_tokens(layer: CrossAttentionLayer, latent_hw: tuple[int, int]) -> float:
    """The layer's attention tokens for a latent of ``latent_hw``: h·w / 4^level (each downsampling halves both
    sides). Exact for sides divisible by 2^level; otherwise the geometric size, which ComfyUI's padded
    downsampling rounds up, so the ratio between two layers' counts is always a power of 4."""
    height, width = latent_hw
    return height * width / 4**layer.level


def choose_layers(layers: list[CrossAttentionLayer], choice: str) -> list[CrossAttentionLayer]:
    """The layers whose token grid is ``1/stride`` of the image for the chosen stride (all layers for "all")."""
    if choice not in LAYER_CHOICES:
        raise ValueError(f"unknown layer choice {choice!r}; expected one of {list(LAYER_CHOICES)}")
    stride = LAYER_CHOICES[choice]
    chosen = [layer for layer in layers if stride is None or layer.image_stride == stride]
    if not chosen:
        available = sorted({f"1/{layer.image_stride}" for layer in layers}, key=lambda s: int(s[2:]))
        raise ValueError(
            f"this model has no cross-attention layers at {choice}; it has layers at {', '.join(available)} of the "
            "image size"
        )
    return chosen
