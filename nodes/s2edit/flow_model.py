"""Flow models, the second kind of model the inversion nodes accept, found by what their sampling computes.

A flow model's ``model_sampling`` is ComfyUI's ``CONST`` (Flux, Flux.2, SD3, Qwen-Image, Wan, AuraFlow, and any model
patched by ModelSamplingSD3 / ModelSamplingFlux): the model input is the sample x itself and denoised = x − σ·v, so
``(x − denoised) / σ`` is the velocity v = ε − x₀ of ``core.s2edit.flow_inversion``. Detection reads the sampling
methods and the σ table, never the model's family, so a new flow family works without a change here.
"""

import torch
from comfy.model_patcher import ModelPatcher
from comfy.model_sampling import CONST

from .epsilon_model import check_epsilon_model


def is_flow_model(model: ModelPatcher) -> bool:
    """Whether the model samples as CONST (velocity prediction, x_σ = (1 − σ) x₀ + σ ε) with a σ table."""
    sampling = model.get_model_object("model_sampling")
    kind = type(sampling)
    table = getattr(sampling, "sigmas", None)
    return (
        getattr(kind, "calculate_denoised", None) is CONST.calculate_denoised
        and getattr(kind, "calculate_input", None) is CONST.calculate_input
        and isinstance(table, torch.Tensor)
        and table.ndim == 1
        and len(table) > 0
    )


def check_invertible_model(model: ModelPatcher) -> bool:
    """True for a flow model, False for an ε-prediction model; a ValueError naming both kinds for any other."""
    if is_flow_model(model):
        return True
    check_epsilon_model(
        model, "DDIM inversion", also=", or a flow model (Flux, SD3, Qwen-Image) for the rectified-flow inversion"
    )
    return False
