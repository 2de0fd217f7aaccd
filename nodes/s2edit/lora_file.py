"""LoRA files that the stock Load LoRA node reads: UNet and text-encoder adapters in one kohya-style safetensors.

Keys are ``<name>.lora_up.weight`` ``[out, r]``, ``<name>.lora_down.weight`` ``[r, in]`` and ``<name>.alpha``, so
ComfyUI adds ``alpha / r · up @ down`` to the weight (``comfy.weight_adapter.lora``). ``<name>`` is
``lora_unet_<diffusers module path>`` (from ``comfy.utils.unet_to_diffusers``; ComfyUI's own module path when a
layer has no diffusers name) and ``lora_te_`` (SD1.x/2.x) or ``lora_te1_``/``lora_te2_`` (SDXL CLIP-L/G)
``+ text_model_<...>`` for the text encoder; ``comfy.lora.model_lora_keys_unet/clip`` map exactly these names.
"""

import comfy.utils
import torch

UNET_PREFIX = "diffusion_model."


def unet_lora_names(unet_config: dict) -> dict[str, str]:
    """ComfyUI UNet module path (``input_blocks.1.1....to_q``) → kohya name (``lora_unet_down_blocks_0_...``)."""
    names = {}
    for diffusers_key, comfy_key in comfy.utils.unet_to_diffusers(unet_config).items():
        if diffusers_key.endswith(".weight"):
            names[comfy_key[: -len(".weight")]] = "lora_unet_" + diffusers_key[: -len(".weight")].replace(".", "_")
    return names


def unet_lora_name(module: str, names: dict[str, str]) -> str:
    """The kohya name of a module of ``BaseModel`` (``diffusion_model.<path>``)."""
    path = module[len(UNET_PREFIX) :] if module.startswith(UNET_PREFIX) else module
    return names.get(path, "lora_unet_" + path.replace(".", "_"))


def text_encoder_lora_name(module: str, encoders: tuple[str, ...]) -> str:
    """``clip_l.transformer.text_model.encoder.layers.0.self_attn.q_proj`` → ``lora_te_text_model_encoder_...``."""
    encoder, _, rest = module.partition(".transformer.")
    if encoder == "clip_g":
        prefix = "lora_te2_" if "clip_l" in encoders else "lora_te_"
    else:
        prefix = "lora_te1_" if "clip_g" in encoders else "lora_te_"
    return prefix + rest.replace(".", "_")


def lora_tensors(name: str, up: torch.Tensor, down: torch.Tensor, alpha: float) -> dict[str, torch.Tensor]:
    """The three tensors of one adapted layer, detached, contiguous, float32 on the CPU."""
    return {
        f"{name}.lora_up.weight": up.detach().float().cpu().contiguous(),
        f"{name}.lora_down.weight": down.detach().float().cpu().contiguous(),
        f"{name}.alpha": torch.tensor(float(alpha)),
    }
