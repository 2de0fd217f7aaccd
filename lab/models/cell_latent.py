"""The cell VAE's latent computed directly: 8×8 average pooling of RGB, the way ``harness.tiny_models.cell_vae``
encodes (a TAESD with exact cell weights), so training does not run the VAE.

VAE latent of a cell: channels 0–2 are (mean colour − 0.5) / CELL_VAE_SCALE, channel 3 the same for the grey level
(mean of R, G, B); the UNet sees it times SD1's latent scale 0.18215 (ComfyUI's ``process_in``).
"""

from __future__ import annotations

import torch

from harness.tiny_models import CELL_VAE_SCALE

SD1_SCALE_FACTOR = 0.18215
CELL = 8


def vae_latent(images: torch.Tensor) -> torch.Tensor:
    """``images`` [B, H, W, 3] in [0, 1] → the cell VAE's latent [B, 4, H/8, W/8] (before the model's scaling)."""
    cells = torch.nn.functional.avg_pool2d(images.permute(0, 3, 1, 2), CELL)
    latent = torch.cat([cells, cells.mean(dim=1, keepdim=True)], dim=1)
    return (latent - 0.5) / CELL_VAE_SCALE


def model_latent(images: torch.Tensor) -> torch.Tensor:
    """What the UNet is trained on: ``vae_latent`` scaled like SD1 latents."""
    return vae_latent(images) * SD1_SCALE_FACTOR


def decode_model_latent(latent: torch.Tensor) -> torch.Tensor:
    """Inverse of ``model_latent`` for the RGB channels (nearest upsampling), [B, H, W, 3] clamped to [0, 1]."""
    rgb = latent[:, :3] / SD1_SCALE_FACTOR * CELL_VAE_SCALE + 0.5
    rgb = torch.nn.functional.interpolate(rgb, scale_factor=CELL, mode="nearest")
    return rgb.clamp(0, 1).permute(0, 2, 3, 1)
