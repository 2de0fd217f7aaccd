"""Multi-condition classifier-free guidance of MCDM (Chen et al. 2024, Eq. 1 extended to three conditions) and the
mask-guided combination of Eq. 3.

With the conditions c_im (image embedding), c_s (concat latent of the source image) and c_p (text), the released
pipeline evaluates four branches (∅ = negative prompt / unconditional image embedding / zero concat latent):

    ε_u     = ε(z_t, t, {∅,    ∅,   ∅  })      uncond:        negative prompt, uncond image embedding, zero latent
    ε_imgp  = ε(z_t, t, {c_im, ∅,   ∅  })      img_p:         negative prompt, image embedding, zero latent
    ε_imgpc = ε(z_t, t, {c_im, c_s, ∅  })      img_p_concat:  negative prompt, image embedding, source latent
    ε_all   = ε(z_t, t, {c_im, c_s, c_p})      all:           prompt, image embedding, source latent

    ε̃ = ε_u + s1 (ε_imgp − ε_u) + s2 (ε_imgpc − ε_imgp) + s3 (ε_all − ε_imgpc)          (s1, s2, s3 = 3, 2, 4)

Mask-guided denoising (Eq. 3) edits with the target prompt p_b inside the mask M and keeps the source prompt p_a
outside it:

    ε̂ = ε̃(p_b) ⊙ M + ε̃(p_a) ⊙ (1 − M)

ε̃(p_b) and ε̃(p_a) share ε_u, ε_imgp and ε_imgpc (none depends on the prompt), so ε̂ needs five UNet evaluations:

    ε̂ = ε_u + s1 (ε_imgp − ε_u) + s2 (ε_imgpc − ε_imgp) + s3 (M ⊙ ε_all(p_b) + (1 − M) ⊙ ε_all(p_a) − ε_imgpc)

All coefficients of each combination sum to one, so the same formulas hold for x₀ predictions x − σε (what
ComfyUI's samplers receive) as for ε.
"""

from __future__ import annotations

import torch

UNCOND = "uncond"
IMAGE = "img_p"
IMAGE_CONCAT = "img_p_concat"
ALL = "all"
ALL_SOURCE = "all_source"
BRANCHES = (UNCOND, ALL, IMAGE, IMAGE_CONCAT)
MASKED_BRANCHES = BRANCHES + (ALL_SOURCE,)


def mcdm_guidance(
    uncond: torch.Tensor,
    image: torch.Tensor,
    image_concat: torch.Tensor,
    full: torch.Tensor,
    *,
    s1: float,
    s2: float,
    s3: float,
) -> torch.Tensor:
    """ε̃ = ε_u + s1 (ε_imgp − ε_u) + s2 (ε_imgpc − ε_imgp) + s3 (ε_all − ε_imgpc)."""
    return uncond + s1 * (image - uncond) + s2 * (image_concat - image) + s3 * (full - image_concat)


def mask_guided(target: torch.Tensor, source: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Eq. 3: ε̂ = ε̃(p_b) ⊙ M + ε̃(p_a) ⊙ (1 − M), with M broadcast over channels."""
    return target * mask + source * (1.0 - mask)


def masked_mcdm_guidance(
    uncond: torch.Tensor,
    image: torch.Tensor,
    image_concat: torch.Tensor,
    *,
    full_target: torch.Tensor,
    full_source: torch.Tensor,
    mask: torch.Tensor,
    s1: float,
    s2: float,
    s3: float,
) -> torch.Tensor:
    """Eq. 3 from the five distinct branches: the shared terms once, the text term blended by M."""
    full = mask_guided(full_target, full_source, mask)
    return mcdm_guidance(uncond, image, image_concat, full, s1=s1, s2=s2, s3=s3)
