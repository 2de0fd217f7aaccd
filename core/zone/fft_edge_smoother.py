"""ZONE's FFT edge smoother and layer blending (§4.4, Eq. 7–8), batched, on the images' device.

Given the original image I_G, the edited image I_sty and the refined mask M_f (Region-IoU's output):

    M_d     = M_f ⊕ B_r                       dilation by a (2r+1)² square (released: 3×3 kernel, 4 times → r = 4)
    M_dm    = | F⁻¹( H(F(I_sty,d)) − H(F(I_G,d)) ) |,   I_·,d = gray(I_·) ⊙ M_d,   gray on the 0–255 scale
    H(f)(c) = f(c) if ‖c − c₀‖₂ ≤ D₀ else 0   ideal low-pass, c₀ = the zero frequency
    M_e     = fill( close( M_dm > τ, 21×21 ) ) close = dilate then erode; fill = fill the holes
    M_f*    = M_e ∪ M_f
    I_C     = I_G + a ⊙ (I_sty − I_G),   a = 1 on M_e ∩ M_f,  α on M_e ⊕ M_f,  0 elsewhere.

Released defaults (``inference.py``, ``utils/mask_utils.py: subtract_fft_images``): r = 4, D₀ = 200 at 512 px (the
paper's value; the released code resizes the longest side to 512, so the radius is relative to the longest side and
:meth:`SmootherSettings.scaled` scales every size by max(H, W) / 512), τ = 30, 21 × 21 closing, α = 0.6.

How this differs from the released code, and why:
- The low-pass is centred on the zero frequency for every size. The released code draws its circle with
  ``cv2.circle(mask, (rows // 2, cols // 2), …)``; cv2 takes (x, y), so for non-square images the circle sits off the
  zero frequency (even off the spectrum) and keeps the wrong frequencies.
- H is linear, so H(F(a)) − H(F(b)) = H(F(a − b)): one real FFT of the difference instead of two complex ones, and
  the mask is defined on integer frequencies (fftfreq) rather than on a shifted spectrum. The circle is symmetric
  under c → −c, so the inverse transform is real (the released code takes the modulus of a numerically real array).
- M_dm is thresholded in floating point. The released code casts it to uint8 first, which wraps values above 255
  back to small numbers, so the strongest differences could be dropped.
- gray uses the ITU-R 601 weights on R, G, B. The released code swaps the red and blue weights (it reorders its
  arrays to BGR, then converts them with ``COLOR_RGB2GRAY``).
- M_e ⊕ M_f as the blended band is what the released code does (``M_e − M_f`` in uint8 wraps, so every pixel where the
  two masks differ is blended); pixels of M_f that the low-pass missed are blended instead of dropped.

Every pixel where a = 0 is copied from I_G, so the output equals the original bit for bit outside M_f*.
"""

import math
from dataclasses import dataclass, replace
from typing import NamedTuple

import torch

from ..masks.binary_morphology import close, dilate
from ..masks.bounding_box import bounding_box
from ..masks.connected_components import fill_holes

REFERENCE_SIZE = 512
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


@dataclass(frozen=True, kw_only=True)
class SmootherSettings:
    dilation_radius: int = 4
    """r of the (2r+1)² square that dilates M_f into M_d."""
    low_pass_radius: float = 200.0
    """D₀ in integer frequency units (cycles per image height along k_y, per image width along k_x)."""
    threshold: float = 30.0
    """τ on the 0–255 gray scale."""
    closing_radius: int = 10
    """r of the (2r+1)² square of the closing (10 → 21 × 21)."""
    alpha: float = 0.6
    """Weight of the edited image in the blended band."""

    def scaled(self, height: int, width: int, reference: int = REFERENCE_SIZE) -> "SmootherSettings":
        """These settings, given for a ``reference``-pixel longest side, for an image of ``height`` × ``width``."""
        scale = max(height, width) / reference
        return replace(
            self,
            dilation_radius=math.floor(self.dilation_radius * scale + 0.5),
            low_pass_radius=self.low_pass_radius * scale,
            closing_radius=math.floor(self.closing_radius * scale + 0.5),
        )


class SmootherResult(NamedTuple):
    final_mask: torch.Tensor
    """bool [B, H, W]: M_f*, every pixel the composite may change."""
    composite: torch.Tensor
    """[B, H, W, C]: I_C."""


def low_pass_mask(height: int, width: int, radius: float, device: torch.device | None = None) -> torch.Tensor:
    """bool [height, width // 2 + 1]: H on the ``rfft2`` grid, True where the integer frequency (k_y, k_x) has
    k_y² + k_x² ≤ radius² (the zero frequency is at [0, 0] here; after ``fftshift`` it is at (H // 2, W // 2))."""
    k_y = torch.fft.fftfreq(height, 1.0 / height, device=device)
    k_x = torch.fft.rfftfreq(width, 1.0 / width, device=device)
    return k_y[:, None] ** 2 + k_x[None, :] ** 2 <= radius**2


def gray(images: torch.Tensor) -> torch.Tensor:
    """[B, H, W, C] in [0, 1] (or differences of such) → [B, H, W] luma on the 0–255 scale (C = 1: gray already)."""
    if images.shape[-1] == 1:
        return images[..., 0] * 255.0
    weights = torch.tensor(LUMA_WEIGHTS, dtype=images.dtype, device=images.device)
    return (images[..., :3] @ weights) * 255.0


def low_pass(values: torch.Tensor, radius: float) -> torch.Tensor:
    """F⁻¹(H · F(values)) for real ``values`` [..., H, W] (real, since H is symmetric under c → −c)."""
    height, width = values.shape[-2:]
    spectrum = torch.fft.rfft2(values) * low_pass_mask(height, width, radius, values.device)
    return torch.fft.irfft2(spectrum, s=(height, width))


def _batch(name: str, tensor: torch.Tensor, size: int) -> torch.Tensor:
    if tensor.shape[0] not in (1, size):
        raise ValueError(f"{name} has batch {tensor.shape[0]}; expected 1 or {size} to match the other inputs")
    return tensor.expand(size, *tensor.shape[1:])


def _check_inputs(original: torch.Tensor, edited: torch.Tensor, fine_mask: torch.Tensor) -> None:
    for name, image in (("original", original), ("edited", edited)):
        if image.dim() != 4 or image.shape[-1] not in (1, 3, 4):
            raise ValueError(f"{name} must be an image [B, H, W, C] with C = 1, 3 or 4; got {tuple(image.shape)}")
        if not torch.isfinite(image.sum()):
            raise ValueError(f"{name} contains NaN or infinite values")
    if original.shape[1:] != edited.shape[1:]:
        raise ValueError(
            f"original is {tuple(original.shape[1:])} (H, W, C) but edited is {tuple(edited.shape[1:])}: "
            "resize or crop them to the same size"
        )
    if fine_mask.dim() != 3 or fine_mask.dtype != torch.bool:
        raise ValueError(f"fine_mask must be bool [B, H, W]; got {fine_mask.dtype} {tuple(fine_mask.shape)}")
    if fine_mask.shape[-2:] != original.shape[1:3]:
        raise ValueError(
            f"fine_mask is {tuple(fine_mask.shape[-2:])} (H, W) but the images are {tuple(original.shape[1:3])}"
        )


def smooth_and_composite(
    original: torch.Tensor,
    edited: torch.Tensor,
    fine_mask: torch.Tensor,
    settings: SmootherSettings = SmootherSettings(),
) -> SmootherResult:
    """M_f* and I_C for images [B, H, W, C] in [0, 1] and bool M_f [B, H, W] (batches of 1 broadcast)."""
    _check_inputs(original, edited, fine_mask)
    if settings.dilation_radius < 0 or settings.closing_radius < 0 or settings.low_pass_radius < 0:
        raise ValueError(f"radii must be ≥ 0, got {settings}")
    if not 0.0 <= settings.alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {settings.alpha}")
    size = max(original.shape[0], edited.shape[0], fine_mask.shape[0])
    original, edited = _batch("original", original, size), _batch("edited", edited, size)
    fine_mask = _batch("fine_mask", fine_mask.to(original.device), size)

    height, width = fine_mask.shape[-2:]
    # I_sty,d − I_G,d: zero outside M_d, so only the box around M_f grown by the dilation is computed
    layer_difference = torch.zeros(size, height, width, device=original.device)
    box = bounding_box(fine_mask, settings.dilation_radius)
    if box is not None:
        rows, columns = box
        dilated = dilate(fine_mask[:, rows, columns], settings.dilation_radius)
        change = edited[:, rows, columns].float() - original[:, rows, columns].float()
        layer_difference[:, rows, columns] = gray(change) * dilated
    changed = low_pass(layer_difference, settings.low_pass_radius).abs() > settings.threshold
    # the closing of `changed` stays within its box grown by r, and within 2r of the box the closing is exactly
    # what it is on the whole image (the image outside is background there), and so is the hole filling
    edge = torch.zeros_like(changed)
    box = bounding_box(changed, 2 * settings.closing_radius)
    if box is not None:
        rows, columns = box
        edge[:, rows, columns] = fill_holes(close(changed[:, rows, columns], settings.closing_radius))
    final = edge | fine_mask
    composite = original.clone(memory_format=torch.contiguous_format)
    box = bounding_box(final)
    if box is not None:
        rows, columns = box
        before, after = original[:, rows, columns], edited[:, rows, columns]
        core = (edge & fine_mask)[:, rows, columns, None]
        band = (edge ^ fine_mask)[:, rows, columns, None]
        blended = torch.where(band, torch.lerp(before, after, settings.alpha), before)
        composite[:, rows, columns] = torch.where(core, after, blended)
    return SmootherResult(final, composite)
