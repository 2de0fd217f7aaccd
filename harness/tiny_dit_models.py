"""Tiny random-weight DiT models built in memory with ComfyUI's own classes, as ModelPatchers on the CPU.

Each is ComfyUI's model class (``comfy.model_base.Flux``/``Flux2``/``QwenImage``/``SD3`` around the real diffusion
model) with a small width, so a sampling step takes milliseconds. They are built from the supported-model configs,
not through checkpoint detection (which would fix Flux's width at 3072 = 24 heads × 128 and its rotary axes, Flux.2's
at 6144, and SD3's at 64 × depth): the attention code under test reads the head count, patch size and block lists
from the built model, so the small widths exercise the same paths. Conditioning is random (``random_conditioning``):
the width of a full text encoder's output is too big for a test.

- Flux.1: 2 heads × 16 (rotary axes 4 + 6 + 6), 1 double + 1 single block, T5 width 32, pooled width 16.
- Flux.2: 2 heads × 16 (4 rotary axes of 4), 1 double + 1 single block, global modulation, patch size 1.
- Qwen-Image: 2 heads × 16 (rotary axes 4 + 6 + 6), 2 double blocks, text width 32.
- SD3: depth 2 (hidden 128 = 2 heads × 64), patch size 2, context width 32, pooled width 16.
- Lumina 2 (a family the attention effects do not handle): 2 heads × 16, 1 layer, 1 refiner layer.

``detected_on_meta`` builds the real widths instead (Flux.1 3072 = 24 heads × 128, Flux.2 6144 = 48 × 128, Qwen-Image
3072 = 24 × 128) on the meta device, one or two blocks deep, and lets ComfyUI's checkpoint detection pick the model
class from the state dict's shapes: no weights are allocated, so the block and head discovery of the real geometry
is checked in milliseconds (nothing can run on it).
"""

from __future__ import annotations

import dataclasses

import torch

from harness.comfy_env import setup_imports
from harness.tiny_models import init_parameters

TEXT_WIDTH = 32
POOLED_WIDTH = 16

FLUX = {
    "image_model": "flux",
    "in_channels": 16,
    "out_channels": 16,
    "patch_size": 2,
    "vec_in_dim": POOLED_WIDTH,
    "context_in_dim": TEXT_WIDTH,
    "hidden_size": 32,
    "mlp_ratio": 2.0,
    "num_heads": 2,
    "depth": 1,
    "depth_single_blocks": 1,
    "axes_dim": [4, 6, 6],
    "theta": 10000,
    "qkv_bias": True,
    "guidance_embed": True,
}

FLUX2 = {
    **FLUX,
    "image_model": "flux2",
    "in_channels": 128,
    "out_channels": 128,
    "patch_size": 1,
    "vec_in_dim": None,
    "axes_dim": [4, 4, 4, 4],
    "theta": 2000,
    "mlp_ratio": 3.0,
    "global_modulation": True,
    "mlp_silu_act": True,
    "qkv_bias": False,
    "ops_bias": False,
    "default_ref_method": "index",
    "ref_index_scale": 10.0,
}

QWEN_IMAGE = {
    "image_model": "qwen_image",
    "in_channels": 64,
    "out_channels": 16,
    "num_layers": 2,
    "attention_head_dim": 16,
    "num_attention_heads": 2,
    "joint_attention_dim": TEXT_WIDTH,
    "axes_dims_rope": (4, 6, 6),
}

SD3 = {
    "in_channels": 16,
    "out_channels": 16,
    "patch_size": 2,
    "depth": 2,
    "input_size": None,
    "adm_in_channels": POOLED_WIDTH,
    "context_embedder_config": {
        "target": "torch.nn.Linear",
        "params": {"in_features": TEXT_WIDTH, "out_features": 128},
    },
    "num_patches": 64 * 64,
    "pos_embed_max_size": 64,
    "pos_embed_scaling_factor": None,
    "x_block_self_attn_layers": [],
}

LUMINA2 = {
    "image_model": "lumina2",
    "in_channels": 16,
    "dim": 32,
    "n_layers": 1,
    "n_refiner_layers": 1,
    "n_heads": 2,
    "multiple_of": 16,
    "cap_feat_dim": TEXT_WIDTH,
    "axes_dims": [4, 6, 6],
    "axes_lens": [1, 64, 64],
}


def init_checkpoint_buffers(module: torch.nn.Module, seed: int) -> None:
    """Fill the floating-point buffers a checkpoint holds (SD3's ``pos_embed``, created with ``torch.empty``) from a
    seeded N(0, 0.02²), as loading a checkpoint would overwrite them."""
    generator = torch.Generator().manual_seed(seed)
    persistent = set(module.state_dict())
    with torch.no_grad():
        for name, buffer in module.named_buffers():
            if name in persistent and buffer.is_floating_point():
                buffer.normal_(0.0, 0.02, generator=generator)


def _patcher(config_class: str, unet_config: dict, seed: int):
    setup_imports()
    import comfy.model_patcher
    import comfy.supported_models

    model_config = getattr(comfy.supported_models, config_class)(dict(unet_config))
    model_config.set_inference_dtype(torch.float32, None)
    model = model_config.get_model({})
    init_parameters(model.diffusion_model, seed)
    init_checkpoint_buffers(model.diffusion_model, seed)
    model.eval()
    return comfy.model_patcher.ModelPatcher(model, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))


def _flux_config(config: dict, txt_ids_dims: list[int]) -> dict:
    """``config`` plus the fields later ComfyUIs' ``FluxParams`` require (the rotary axes text ids fill)."""
    setup_imports()
    from comfy.ldm.flux.model import FluxParams

    if "txt_ids_dims" in {f.name for f in dataclasses.fields(FluxParams)}:
        return {**config, "txt_ids_dims": txt_ids_dims}
    return config


def tiny_flux(seed: int = 7101):
    """A Flux.1 (dev-style, guidance-embedded) ModelPatcher; Kontext is the same model with reference latents."""
    return _patcher("Flux", _flux_config(FLUX, []), seed)


def flux_with(overrides: dict, seed: int = 7101):
    """A Flux.1 ModelPatcher of the tiny configuration with ``overrides`` (wider or deeper, for benches)."""
    return _patcher("Flux", _flux_config({**FLUX, **overrides}, []), seed)


def tiny_flux2(seed: int = 7102):
    """A Flux.2 ModelPatcher (128-channel latents at patch size 1)."""
    return _patcher("Flux2", _flux_config(FLUX2, [3]), seed)


def tiny_qwen_image(seed: int = 7103):
    """A Qwen-Image ModelPatcher; Qwen-Image-Edit is the same model with reference latents."""
    return _patcher("QwenImage", QWEN_IMAGE, seed)


def tiny_sd3(seed: int = 7104):
    """An SD3 MMDiT ModelPatcher."""
    return _patcher("SD3", SD3, seed)


def tiny_lumina2(seed: int = 7105):
    """A Lumina 2 ModelPatcher (its DiT has no block replaces the attention effects could use)."""
    return _patcher("Lumina2", LUMINA2, seed)


FULL_WIDTH = {
    "Flux.1": {
        **FLUX,
        "hidden_size": 3072,
        "num_heads": 24,
        "axes_dim": [16, 56, 56],
        "mlp_ratio": 4.0,
        "context_in_dim": 4096,
        "vec_in_dim": 768,
    },
    "Flux.2": {**FLUX2, "hidden_size": 6144, "num_heads": 48, "axes_dim": [32, 32, 32, 32], "context_in_dim": 15360},
    "Qwen-Image": {"num_layers": 2},
}


def detected_on_meta(family: str):
    """A ModelPatcher of ``family`` ("Flux.1", "Flux.2", "Qwen-Image") at its real width on the meta device, its
    model class chosen by ComfyUI's detection from the state dict."""
    setup_imports()
    import comfy.model_detection
    import comfy.model_patcher
    import comfy.ops
    from comfy.ldm.flux.model import Flux
    from comfy.ldm.qwen_image.model import QwenImageTransformer2DModel

    config = dict(FULL_WIDTH[family])
    if family.startswith("Flux"):
        config.pop("image_model")
        dit_class = Flux
        config = _flux_config(config, [3] if family == "Flux.2" else [])
    else:
        dit_class = QwenImageTransformer2DModel
    with torch.device("meta"):
        dit = dit_class(**config, dtype=torch.bfloat16, device="meta", operations=comfy.ops.disable_weight_init)
    state_dict = dit.state_dict()
    model_config = comfy.model_detection.model_config_from_unet(state_dict, "")
    model = model_config.get_model(state_dict, "", device=torch.device("meta"))
    return comfy.model_patcher.ModelPatcher(model, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))


def random_conditioning(tokens: int, seed: int, **options) -> list:
    """A CONDITIONING of ``tokens`` random text tokens of the stand-ins' text width, with a pooled output and any
    further ``options`` (``guidance``, ``reference_latents``, …)."""
    generator = torch.Generator().manual_seed(seed)
    text = torch.randn(1, tokens, TEXT_WIDTH, generator=generator)
    pooled = torch.randn(1, POOLED_WIDTH, generator=generator)
    return [[text, {"pooled_output": pooled, **options}]]
