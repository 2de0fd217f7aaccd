"""The lab's text-to-image UNet: ComfyUI's own ``openaimodel.UNetModel``, small, trained with v-prediction.

The network predicts v = α ε − σ x₀ (v-prediction learns colour and position within minutes where ε-prediction does
not, at this size). To ComfyUI it is an ε-prediction SD1-style model: ``forward`` returns
ε = α v + σ x_t, exact for any v, so samplers, DDIM inversion and null-text inversion (which accept ε models only)
see an ordinary ε model with SD1.x's noise schedule. α and σ are read from the timestep the way ComfyUI's
ModelSamplingDiscrete maps σ to t (linear interpolation of log σ over the 1000 training steps).
"""

from __future__ import annotations

from typing import Any

import torch

from lab.models.comfy_setup import import_comfy
from lab.models.text_encoder import WIDTH

UNET_CONFIG: dict[str, Any] = {
    "image_size": 16,
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 32,
    "num_res_blocks": [1, 1],
    "channel_mult": [1, 2],
    "transformer_depth": [1, 1],
    "transformer_depth_output": [1, 1, 1, 1],
    "transformer_depth_middle": 1,
    "context_dim": WIDTH,
    "use_linear_in_transformer": True,
    "use_spatial_transformer": True,
    "legacy": False,
    "num_heads": -1,
    "num_head_channels": 16,
    "adm_in_channels": None,
    "use_temporal_attention": False,
    "use_temporal_resblock": False,
}


def sd1_log_sigmas() -> torch.Tensor:
    """log σ_t of SD1.x's scaled-linear schedule (β from 0.00085 to 0.012, 1000 steps), as ComfyUI builds it."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    return (((1 - alphas_cumprod) / alphas_cumprod) ** 0.5).log().float()


class PlainOps:
    """torch.nn layers with their ordinary initialisation, in the shape of ComfyUI's ``operations`` argument
    (ComfyUI's own ops skip initialisation because they expect a checkpoint)."""

    Linear = torch.nn.Linear
    Conv2d = torch.nn.Conv2d
    Conv3d = torch.nn.Conv3d
    GroupNorm = torch.nn.GroupNorm
    LayerNorm = torch.nn.LayerNorm

    @staticmethod
    def conv_nd(dims: int, *args: Any, **kwargs: Any) -> torch.nn.Module:
        if dims == 2:
            return torch.nn.Conv2d(*args, **kwargs)
        if dims == 3:
            return torch.nn.Conv3d(*args, **kwargs)
        raise ValueError(f"unsupported dims: {dims}")


def model_config(operations: Any = None) -> Any:
    """A ComfyUI model config: SD1.x (latent format, ε type, schedule) with the lab's UNet and ``operations``."""
    import_comfy()
    import comfy.supported_models

    class LabConfig(comfy.supported_models.SD15):
        unet_config = UNET_CONFIG
        unet_extra_config: dict[str, Any] = {}
        custom_operations = operations

    return LabConfig(UNET_CONFIG)


def unet_class() -> type:
    """``LabUNet``: ComfyUI's UNetModel predicting v, returning ε (see the module docstring)."""
    import_comfy()
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    class LabUNet(UNetModel):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.register_buffer("lab_log_sigmas", sd1_log_sigmas(), persistent=False)

        def velocity(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor, **kwargs: Any) -> Any:
            """The network's own output, v."""
            return super().forward(x, timesteps, context, **kwargs)

        def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor, **kwargs: Any) -> Any:
            v = super().forward(x, timesteps, context, **kwargs)
            t = timesteps.float().clamp(0, 999)
            low = t.floor().long().clamp(max=998)
            w = (t - low.float()).to(x.dtype)
            log_sigmas = self.lab_log_sigmas.to(x.device)
            sigma = (log_sigmas[low] * (1 - w) + log_sigmas[low + 1] * w).exp().to(x.dtype)
            alpha = (1 / (1 + sigma**2)).sqrt().view(-1, 1, 1, 1)
            s = (sigma / (1 + sigma**2).sqrt()).view(-1, 1, 1, 1)
            return alpha * v + s * x

    return LabUNet


def build_model(state_dict: dict[str, torch.Tensor] | None = None, trainable: bool = False) -> Any:
    """ComfyUI's BaseModel (ε type, SD1 latent format) around a LabUNet; ``trainable`` builds plain initialised
    torch layers, else ComfyUI's layers loaded from ``state_dict``."""
    import_comfy()
    import comfy.model_base

    model = comfy.model_base.BaseModel(
        model_config(PlainOps if trainable else None),
        comfy.model_base.ModelType.EPS,
        device=torch.device("cpu"),
        unet_model=unet_class(),
    )
    if state_dict is not None:
        model.diffusion_model.load_state_dict(state_dict)
    return model


def model_patcher(state_dict: dict[str, torch.Tensor]) -> Any:
    """The MODEL a loader returns: a ModelPatcher around ``build_model(state_dict)``."""
    import_comfy()
    import comfy.model_management
    import comfy.model_patcher

    model = build_model(state_dict)
    return comfy.model_patcher.ModelPatcher(
        model,
        load_device=comfy.model_management.get_torch_device(),
        offload_device=comfy.model_management.unet_offload_device(),
    )
