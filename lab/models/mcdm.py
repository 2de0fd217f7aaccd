"""The lab's MCDM: the pack's Multi-Conditioned Diffusion Model built on the lab's networks.

- The UNet is the lab's 8-channel UNet (``lab.models.instruction_unet``: the part-1 LabUNet with the source latent
  as channels 4-7, predicting v and returning ε), inside the pack's ``MCDMUNetModel`` (InstructPix2Pix's concat
  conditioning with MCDM's scaled latent), so the pack's MCDM Guider and MCDM Edit Mask take it as any MCDM. The
  pack's classes come from the copy of the pack ComfyUI runs (``lab.pack``), which a server loads under another name.
- The image tower is ComfyUI's own CLIP vision class (``comfy.clip_vision.ClipVisionModel``) at a tiny size with
  seeded random weights, frozen, like the lab's text encoder: 128-pixel input, 16-pixel patches (64 patches + the
  class token = 65 tokens), width 64 (the text encoder's, so [text ; image] tokens share the cross-attention
  width). No trained image tower exists in the lab; a random transformer's tokens still carry the image (random
  features), and the adapter and UNet learn to read them, as the UNet learned to read the random text encoder.
- The adapter is the pack's ``MCDMAdapter`` at these shapes: 65 CLIP tokens + 4 latent tokens (the 16×16 latent
  max-pooled to 8×8, MaxPool2d(2) as released, 64 cells) → 65 image tokens of width 64.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from lab.models.comfy_setup import import_comfy
from lab.models.instruction_unet import instruction_unet_class, model_config
from lab.models.text_encoder import WIDTH

VISION_CONFIG: dict[str, Any] = {
    "attention_dropout": 0.0,
    "dropout": 0.0,
    "hidden_act": "quick_gelu",
    "hidden_size": WIDTH,
    "image_size": 128,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 4 * WIDTH,
    "layer_norm_eps": 1e-05,
    "model_type": "clip_vision_model",
    "num_attention_heads": 4,
    "num_channels": 3,
    "num_hidden_layers": 2,
    "patch_size": 16,
    "projection_dim": WIDTH,
    "torch_dtype": "float32",
}
VISION_TOKENS = (VISION_CONFIG["image_size"] // VISION_CONFIG["patch_size"]) ** 2 + 1
LATENT_CELLS = 64


def adapter_config() -> Any:
    from precise_edit.core.mcdm.adapter import AdapterConfig

    return AdapterConfig(clip_tokens=VISION_TOKENS, vae_cells=LATENT_CELLS, width=WIDTH, output_tokens=VISION_TOKENS)


def build_vision(state_dict: dict[str, torch.Tensor] | None = None) -> Any:
    """ComfyUI's ClipVisionModel with the tiny configuration (and ``state_dict`` loaded, if given)."""
    import_comfy()
    import comfy.clip_vision

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "lab_clip_vision.json"
        path.write_text(json.dumps(VISION_CONFIG))
        vision = comfy.clip_vision.ClipVisionModel(str(path))
    if state_dict is not None:
        missing, unexpected = vision.load_sd(state_dict)
        if missing or unexpected:
            raise RuntimeError(f"lab CLIP vision state dict does not fit: missing {missing}, unexpected {unexpected}")
    return vision


def random_vision_state(seed: int) -> dict[str, torch.Tensor]:
    """CLIP's initialisation from a seeded generator (embeddings and linear weights N(0, 0.02), zero biases, unit
    layer norms); every tensor is set, since ComfyUI's layers leave weights uninitialised."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in build_vision().get_sd().items():
        if "norm" in name:
            state[name] = torch.ones_like(tensor) if name.endswith("weight") else torch.zeros_like(tensor)
        elif name.endswith("bias"):
            state[name] = torch.zeros_like(tensor)
        else:
            state[name] = torch.randn(tensor.shape, generator=generator, dtype=torch.float32) * 0.02
    return state


def model_class() -> type:
    """``LabMCDMModel``: the pack's MCDMUNetModel holding the lab's v-predicting 8-channel UNet."""
    import_comfy()
    import comfy.model_base

    from lab.pack import pack_module

    class LabMCDMModel(pack_module("nodes.mcdm.model_file").MCDMUNetModel):
        def __init__(self, config: Any, device: torch.device | None = None) -> None:
            comfy.model_base.BaseModel.__init__(
                self, config, comfy.model_base.ModelType.EPS, device=device, unet_model=instruction_unet_class()
            )
            self.process_ip2p_image_in = self.latent_format.process_in

    return LabMCDMModel


def build_unet(state_dict: dict[str, torch.Tensor] | None = None, trainable: bool = False) -> Any:
    """The ComfyUI model; ``trainable`` builds plain initialised torch layers, else ComfyUI's (``state_dict``)."""
    from lab.models.unet import PlainOps

    model = model_class()(model_config(PlainOps if trainable else None), device=torch.device("cpu"))
    if state_dict is not None:
        model.diffusion_model.load_state_dict(state_dict)
    return model


def build_mcdm(
    unet_state: dict[str, torch.Tensor], adapter_state: dict[str, torch.Tensor], vision: Any, name: str = "lab_mcdm"
) -> Any:
    """The pack's MCDM (PE_MCDM socket) of the lab: ModelPatcher of the UNet, the adapter and the vision tower."""
    import comfy.model_management
    import comfy.model_patcher

    from lab.pack import pack_module
    from precise_edit.core.mcdm.adapter import build_adapter

    model_file = pack_module("nodes.mcdm.model_file")
    patcher = comfy.model_patcher.ModelPatcher(
        build_unet(unet_state),
        load_device=comfy.model_management.get_torch_device(),
        offload_device=comfy.model_management.unet_offload_device(),
    )
    return model_file.MCDM(patcher, build_adapter(adapter_state), model_file.MCDMVision(vision), name)
