"""Local blending of prompt-to-prompt edits (``LocalBlend`` in the official ``prompt-to-prompt`` code).

After each sampling step i ≥ ⌊s · N⌋ (s = 0.2 in the official code), the target latent keeps the source's
values outside the region of the blend words:

    W_b = mean over layers and heads of Σ_{t ∈ words_b} Ā_b[:, t]          (16×16 cross-attention maps,
                                                                            summed over the steps so far)
    m_b = up(maxpool_3×3(W_b)) / max up(maxpool_3×3(W_b)) > τ          (nearest upsampling to the latent, τ = 0.3)
    m = m_src ∨ m_tgt,        x_tgt ← x_src + m ⊙ (x_tgt − x_src),

where b is the source (with the source prompt's blend words) and the target (with the target prompt's). The
maps may be running means instead of sums: the normalisation by the maximum makes the two equal.
"""

import torch
import torch.nn.functional as F

OFFICIAL_START = 0.2
OFFICIAL_THRESHOLD = 0.3


def blend_start_step(steps: int, start: float = OFFICIAL_START) -> int:
    """The first sampling step after which the latents are blended: ⌊s · N⌋."""
    if not 0.0 <= start <= 1.0:
        raise ValueError(f"blend start must be a fraction of the steps between 0 and 1, got {start}")
    return int(start * steps)


def blend_mask(word_maps: torch.Tensor, size: tuple[int, int], threshold: float) -> torch.Tensor:
    """``m`` ``[B, 1, H, W]`` (0/1 floats) from ``word_maps`` ``[B, h, w]`` (source first), for a latent ``size``."""
    pooled = F.max_pool2d(word_maps[:, None].float(), kernel_size=3, stride=1, padding=1)
    upsampled = F.interpolate(pooled, size=size, mode="nearest")
    peak = upsampled.amax(dim=(2, 3), keepdim=True).clamp_min(torch.finfo(upsampled.dtype).tiny)
    masks = upsampled / peak > threshold
    return (masks[:1] | masks).float()


def blend_latents(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x_src + m ⊙ (x − x_src)`` for every image of ``x`` (the source, first, is unchanged)."""
    source = x[:1]
    return source + mask.to(x) * (x - source)
