"""The lab's unCLIP-style UNet: the part-1 UNet with SD 2.1 unCLIP's image-embedding input (ADM), served through
ComfyUI's own unCLIP route.

SD 2.1 unCLIP conditions the UNet on a CLIP image embedding e besides the text: unCLIPConditioning puts e in the
conditioning, the model's ``noise_augmentor`` (``CLIPEmbeddingNoiseAugmentation``) noises it to the chosen level k
and appends the level's timestep embedding, and the UNet adds ``label_emb([ẽ ‖ emb(k)])`` to its timestep
embedding (``model_base.SD21UNCLIP.encode_adm``, ``unclip_adm``). A branch without unCLIP conditioning gets an
all-zero ADM vector. Here e is the 64-d ``image_embeds`` of the toy CLIP's vision tower (``lab.models.toy_clip``),
so the ADM input has 2 × 64 channels; the model class is ComfyUI's ``SD21UNCLIP`` holding the part-1 ``LabUNet``
(v-prediction served as ε, see ``lab.models.unet``) instead of a v-prediction UNet.
"""

from __future__ import annotations

from typing import Any

import torch

from lab.models.comfy_setup import import_comfy
from lab.models.toy_clip import EMBEDDING_DIM
from lab.models.unet import UNET_CONFIG, PlainOps, unet_class

UNCLIP_UNET_CONFIG: dict[str, Any] = {**UNET_CONFIG, "adm_in_channels": 2 * EMBEDDING_DIM, "num_classes": "sequential"}
NOISE_AUG_CONFIG: dict[str, Any] = {
    "noise_schedule_config": {"timesteps": 1000, "beta_schedule": "squaredcos_cap_v2"},
    "timestep_dim": EMBEDDING_DIM,
}
ADM_PREFIX = "label_emb."


def model_config(operations: Any = None) -> Any:
    """ComfyUI's SD1.5 config (latent format, ε type, SD1 schedule) with the lab's UNet and its ADM input."""
    import_comfy()
    import comfy.supported_models

    class LabUnCLIPConfig(comfy.supported_models.SD15):
        unet_config = UNCLIP_UNET_CONFIG
        unet_extra_config: dict[str, Any] = {}
        custom_operations = operations
        noise_aug_config = NOISE_AUG_CONFIG

    return LabUnCLIPConfig(UNCLIP_UNET_CONFIG)


def model_class() -> type:
    """``LabUnCLIP``: ComfyUI's SD21UNCLIP (noise augmentor, ``encode_adm``) around an ε-served LabUNet."""
    import_comfy()
    import comfy.model_base
    from comfy.ldm.modules.encoders.noise_aug_modules import CLIPEmbeddingNoiseAugmentation

    class LabUnCLIP(comfy.model_base.SD21UNCLIP):
        def __init__(self, config: Any, device: torch.device | None = None) -> None:
            comfy.model_base.BaseModel.__init__(
                self, config, comfy.model_base.ModelType.EPS, device=device, unet_model=unet_class()
            )
            self.noise_augmentor = CLIPEmbeddingNoiseAugmentation(**config.noise_aug_config)

    return LabUnCLIP


def build_model(state_dict: dict[str, torch.Tensor] | None = None, trainable: bool = False) -> Any:
    """The ComfyUI model; ``trainable`` builds plain initialised torch layers, else ComfyUI's loaded from
    ``state_dict``."""
    model = model_class()(model_config(PlainOps if trainable else None), device=torch.device("cpu"))
    if state_dict is not None:
        model.diffusion_model.load_state_dict(state_dict)
    return model


def load_part1(network: torch.nn.Module, part1: dict[str, torch.Tensor]) -> None:
    """Start from the part-1 UNet: every weight but the new ADM layers, whose last layer starts at zero (so the
    untrained model is the part-1 model for any embedding)."""
    missing, unexpected = network.load_state_dict(part1, strict=False)
    if unexpected or any(not key.startswith(ADM_PREFIX) for key in missing):
        raise RuntimeError(f"the part-1 UNet does not fit: missing {missing}, unexpected {unexpected}")
    last = network.label_emb[0][-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)


def adm_input(model: Any, image_embeds: torch.Tensor) -> torch.Tensor:
    """The ADM vectors ``[N, 2D]`` ComfyUI computes for each embedding with unCLIPConditioning at strength 1 and
    noise_augmentation 0 (``unclip_adm``: the noise augmentor at level 0, then the level's embedding)."""
    level = torch.zeros(1, dtype=torch.long)
    rows = []
    for embedding in image_embeds:
        noised, level_embedding = model.noise_augmentor(embedding[None], noise_level=level)
        rows.append(torch.cat([noised, level_embedding], dim=1))
    return torch.cat(rows)


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
