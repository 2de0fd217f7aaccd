"""ZONE's fused InstructPix2Pix + MagicBrush denoising (Li et al., Eq. 5).

Eq. 5 blends the latents both models denoise from z_t:

    z_{t−1} = (z*_{t−1} + β z'_{t−1}) / (1 + β),

with z* from InstructPix2Pix and z' from MagicBrush, β = 0.2 for "remove" and 0.01 otherwise.

Inside a sampler we blend the two models' guided denoised predictions at every model call instead:

    D = (D_ip2p(z_t) + β D_mb(z_t)) / (1 + β).

This is the same thing for every sampler whose update is affine in the current latent and the model's predictions
with coefficients that do not depend on the predictions (Euler, DDIM, the ancestral and SDE samplers with a
shared noise draw, DPM-Solver++(2M) and other multistep methods whose history is the model's own predictions): one
step is z_{t−1} = a z_t + Σ_k b_k D_k + c ξ, so

    (a z_t + Σ b_k D*_k + c ξ + β (a z_t + Σ b_k D'_k + c ξ)) / (1 + β) = a z_t + Σ b_k (D*_k + β D'_k)/(1 + β) + c ξ.

For multi-stage methods (Heun, DPM-2, RK) the blend defines one fused model whose stages are evaluated at the
fused intermediate latents.

The released code (``null_text_w_ptp.py:text2image_instructpix2pix_blend``) differs in one respect: it keeps
MagicBrush on a trajectory of its own (its latent never receives the fused one), so there z' is MagicBrush's step
from its own z'_t. Reproducing that inside one sampler would need the sampler's update rule; the blend above is
Eq. 5 as the paper writes it, with both models denoising the same z_t.
"""

import torch


def fuse_predictions(ip2p: torch.Tensor, magicbrush: torch.Tensor, beta: float) -> torch.Tensor:
    """``(ip2p + β magicbrush) / (1 + β)``; β = 0 returns ``ip2p`` itself."""
    if beta < 0:
        raise ValueError(f"beta must be ≥ 0, got {beta}")
    if beta == 0:
        return ip2p
    return (ip2p + beta * magicbrush) / (1.0 + beta)
