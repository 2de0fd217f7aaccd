"""Composable diffusion on a double-width canvas: the paired-data generator of MCDM (Chen et al. 2024, eq. 2).

One latent z_t ∈ R^{h×2w×4} holds the source x_A (left half) and the target x_B (right half). At each step

    ε̄ = s_d · ε̃(z_t, t, {c_p, c_id}) + s_a · M_a ⊙ ε̃(z_t, t, {c_pa, c_id}) + s_b · M_b ⊙ ε̃(z_t, t, {c_pb, c_id})

with M_a = [1, 0] and M_b = [0, 1] the left/right halves of the canvas, c_p the shared prompt ("the same woman on
the left and right"), c_pa / c_pb the source / target prompts, c_id the identity conditioning (carried inside the
three conditionings here) and ε̃ classifier-free guided against one negative: ε̃_k = ε_∅ + cfg · (ε_k − ε_∅).

ComfyUI's samplers work on denoised predictions x̂0 = z − σ·ε (the k-diffusion parametrisation, for every model
type). A weighted sum of ε's with weight field W = s_d + s_a·M_a + s_b·M_b maps to denoised predictions as
    x̂0(ε̄) = z − σ·ε̄ = s_d·x̂0_p + s_a·M_a⊙x̂0_a + s_b·M_b⊙x̂0_b + (1 − W)⊙z,
which needs no division by σ, so eq. 2 is applied to x̂0's exactly (``combine_denoised``).
"""

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class CanvasStrengths:
    """The strengths s'_d (shared prompt, whole canvas), s'_a (source prompt, left) and s'_b (target prompt, right)."""

    shared: float
    source: float
    target: float


def check_canvas_width(width: int, what: str = "latent") -> int:
    """The half width of a double-width canvas; a ValueError when ``width`` cannot be split into two equal halves."""
    if width < 2 or width % 2:
        raise ValueError(
            f"the {what} is {width} wide: the paired canvas needs an even width (two images side by side, "
            "e.g. an image 2·W wide with W a multiple of 8)"
        )
    return width // 2


def half_masks(shape: torch.Size, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """M_a = [1, 0] and M_b = [0, 1] over the last (width) axis of ``shape``, broadcastable against it."""
    half = check_canvas_width(shape[-1])
    left = torch.zeros(shape[-1], device=device, dtype=dtype)
    left[:half] = 1.0
    return left, 1.0 - left


def guided(uncond: torch.Tensor, cond: torch.Tensor, cfg: float) -> torch.Tensor:
    """Classifier-free guidance ε̃ = ε_∅ + cfg · (ε_c − ε_∅) (the same affine form holds for x̂0's)."""
    return uncond + cfg * (cond - uncond)


def combine_noise(
    shared: torch.Tensor, source: torch.Tensor, target: torch.Tensor, strengths: CanvasStrengths
) -> torch.Tensor:
    """Eq. 2 on guided noise predictions ε̃ of shape (..., h, 2w): s_d·ε̃_p + s_a·M_a⊙ε̃_a + s_b·M_b⊙ε̃_b."""
    left, right = half_masks(shared.shape, shared.device, shared.dtype)
    return strengths.shared * shared + strengths.source * left * source + strengths.target * right * target


def combine_denoised(
    x: torch.Tensor,
    shared: torch.Tensor,
    source: torch.Tensor,
    target: torch.Tensor,
    *,
    strengths: CanvasStrengths,
) -> torch.Tensor:
    """Eq. 2 expressed on guided denoised predictions x̂0 = x − σ·ε̃ at the noisy canvas ``x`` (module docstring)."""
    left, right = half_masks(x.shape, x.device, x.dtype)
    weight = strengths.shared + strengths.source * left + strengths.target * right
    return combine_noise(shared, source, target, strengths) + (1.0 - weight) * x


def split_canvas(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_A, x_B): the left and right halves of a (B, H, 2W, C) image batch."""
    half = check_canvas_width(images.shape[2], "image")
    return images[:, :, :half], images[:, :, half:]
