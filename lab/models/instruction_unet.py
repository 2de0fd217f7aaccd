"""The lab's instruction UNet in InstructPix2Pix's layout: ComfyUI's UNetModel with 8 input channels.

The input is the noisy latent (4 channels) and the source image's latent (4 channels) concatenated, as in
InstructPix2Pix; the instruction enters by cross-attention from the lab's text encoder. The network predicts
v = α ε − σ x₀ and returns ε = α v + σ x_t computed from the first four (noisy) input channels, so ComfyUI sees an
ε-prediction SD1-style model, like the part-1 UNet (``lab.models.unet``).

To ComfyUI it is an InstructPix2Pix model (``comfy.model_base.IP2P``): the image condition arrives as the
conditioning's ``concat_latent_image`` (InstructPixToPixConditioning, the pack's Fused Instruct Guider) and becomes
the extra channels, all zeros when a branch has no image (the unconditional branch of IP2P's three-way guidance).
Unlike SD1.5's InstructPix2Pix, which takes the VAE latent unscaled, the lab model takes it scaled like the noisy
latent (``latent_format.process_in``, as ComfyUI's SDXL EDM edit models do): the cell VAE's raw latent spans ±20.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import torch

from lab.models.comfy_setup import import_comfy
from lab.models.unet import UNET_CONFIG, PlainOps, unet_class

LATENT_CHANNELS = 4
INSTRUCTION_UNET_CONFIG: dict[str, Any] = {**UNET_CONFIG, "in_channels": 2 * LATENT_CHANNELS}


def model_config(operations: Any = None) -> Any:
    """ComfyUI's SD1.5 InstructPix2Pix config (latent format, ε type, SD1 schedule) with the lab's 8-channel UNet."""
    import_comfy()
    import comfy.supported_models

    class LabInstructConfig(comfy.supported_models.SD15_instructpix2pix):
        unet_config = INSTRUCTION_UNET_CONFIG
        unet_extra_config: dict[str, Any] = {}
        custom_operations = operations

    return LabInstructConfig(INSTRUCTION_UNET_CONFIG)


def alpha_sigma(timesteps: torch.Tensor, log_sigmas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """α_t and σ_t (variance preserving) at ComfyUI's float timesteps: log σ interpolated linearly between steps."""
    t = timesteps.float().clamp(0, 999)
    low = t.floor().long().clamp(max=998)
    w = t - low.float()
    sigma = (log_sigmas[low] * (1 - w) + log_sigmas[low + 1] * w).exp()
    scale = (1 + sigma**2).sqrt()
    return (1 / scale).view(-1, 1, 1, 1), (sigma / scale).view(-1, 1, 1, 1)


def instruction_unet_class() -> type:
    """``LabInstructUNet``: the part-1 LabUNet predicting v, returning ε from the noisy channels of its input."""
    base = unet_class()

    class LabInstructUNet(base):
        def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor, **kwargs: Any) -> Any:
            v = self.velocity(x, timesteps, context, **kwargs)
            alpha, s = alpha_sigma(timesteps, self.lab_log_sigmas.to(x.device))
            return alpha.to(x.dtype) * v + s.to(x.dtype) * x[:, :LATENT_CHANNELS]

    return LabInstructUNet


@cache
def model_class() -> type:
    """``LabInstructPix2Pix``: ComfyUI's IP2P conditioning on a BaseModel holding a LabInstructUNet. One class per
    process: the Fused Instruct Guider takes a MagicBrush only of its model's own class."""
    import_comfy()
    import comfy.model_base

    class LabInstructPix2Pix(comfy.model_base.IP2P, comfy.model_base.BaseModel):
        def __init__(self, config: Any, device: torch.device | None = None) -> None:
            super().__init__(config, comfy.model_base.ModelType.EPS, device=device, unet_model=instruction_unet_class())
            self.process_ip2p_image_in = self.latent_format.process_in

    return LabInstructPix2Pix


def build_model(state_dict: dict[str, torch.Tensor] | None = None, trainable: bool = False) -> Any:
    """The ComfyUI model; ``trainable`` builds plain initialised torch layers, else ComfyUI's loaded from
    ``state_dict``."""
    model = model_class()(model_config(PlainOps if trainable else None), device=torch.device("cpu"))
    if state_dict is not None:
        model.diffusion_model.load_state_dict(state_dict)
    return model


def model_patcher(state_dict: dict[str, torch.Tensor]) -> Any:
    """The MODEL a loader returns: a ModelPatcher around ``build_model(state_dict)``."""
    import_comfy()
    import comfy.model_management
    import comfy.model_patcher

    return comfy.model_patcher.ModelPatcher(
        build_model(state_dict),
        load_device=comfy.model_management.get_torch_device(),
        offload_device=comfy.model_management.unet_offload_device(),
    )
