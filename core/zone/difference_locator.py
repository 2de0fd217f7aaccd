"""A rough edit mask M_b from the difference between an original and an edited image (or latent).

ZONE finds M_b in InstructPix2Pix's attention; this finds it in the result, so that Region-IoU and the FFT smoother
can wrap any editor (Flux Kontext, Qwen-Image-Edit, inpainting, …). It goes beyond the paper. For ``original`` O and
``edited`` E of shape [B, C, H, W]:

    d(p)  = max_c |E_c(p) − O_c(p)|         ("max": any channel that changed; catches pure hue changes)
          | (1/C) Σ_c |E_c(p) − O_c(p)|     ("mean": the mean absolute difference)
          | sqrt((1/C) Σ_c (E_c(p) − O_c(p))²)   ("rms")
    d̃     = G_σ * d                          (Gaussian blur, σ in pixels, replicated borders; σ < 0.001: none)
    M_b   = d̃ > T                            (absolute: T on the data's scale, e.g. 0.1 for images in [0, 1])
          | d̃ > T · max_p d̃                 (relative: per image, so the mask does not depend on the edit's strength)

The blur merges the scattered small differences an editor's VAE round trip leaves everywhere into a low floor and
keeps the edited region, which differs strongly and coherently, above the threshold. With ``size`` the blurred
difference is resized bilinearly before thresholding (for latents, whose grid is 8× coarser than the image).
"""

import math
from typing import Literal

import kornia
import torch
import torch.nn.functional as F

DifferenceMetric = Literal["max", "mean", "rms"]
METRICS: tuple[str, ...] = ("max", "mean", "rms")
MIN_BLUR_SIGMA = 1e-3
"""Below this σ (pixels) the Gaussian's off-centre weights are 0 in float32: no blur."""


def pixel_difference(original: torch.Tensor, edited: torch.Tensor, metric: DifferenceMetric = "max") -> torch.Tensor:
    """d for [B, C, H, W] tensors (batches of 1 broadcast) → float [B, H, W]."""
    change = (edited.float() - original.float()).abs()
    if metric == "max":
        return change.amax(1)
    if metric == "mean":
        return change.mean(1)
    if metric == "rms":
        return change.square().mean(1).sqrt()
    raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def difference_mask(
    original: torch.Tensor,
    edited: torch.Tensor,
    *,
    metric: DifferenceMetric = "max",
    blur_sigma: float = 2.0,
    threshold: float = 0.25,
    relative: bool = True,
    size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """bool M_b [B, H, W] (or [B, *size]) for ``original`` and ``edited`` [B, C, H, W]."""
    if original.dim() != 4 or original.shape[1:] != edited.shape[1:]:
        raise ValueError(
            f"original and edited must be [B, C, H, W] of the same C, H, W; got {tuple(original.shape)} and "
            f"{tuple(edited.shape)}"
        )
    if original.shape[0] != edited.shape[0] and 1 not in (original.shape[0], edited.shape[0]):
        raise ValueError(
            f"original has {original.shape[0]} images and edited has {edited.shape[0]}: expected the same number or 1"
        )
    if blur_sigma < 0 or threshold < 0:
        raise ValueError(f"blur_sigma and threshold must be ≥ 0, got {blur_sigma} and {threshold}")
    difference = pixel_difference(original, edited, metric)[:, None]
    if blur_sigma >= MIN_BLUR_SIGMA:
        side = 2 * math.ceil(3 * blur_sigma) + 1
        difference = kornia.filters.gaussian_blur2d(difference, (side, side), (blur_sigma, blur_sigma), "replicate")
    if size is not None:
        difference = F.interpolate(difference, size=size, mode="bilinear", align_corners=False)
    difference = difference[:, 0]
    if relative:
        return difference > threshold * difference.flatten(1).amax(1)[:, None, None]
    return difference > threshold
