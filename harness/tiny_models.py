"""Tiny random-weight checkpoints built with ComfyUI's own classes, cached and exposed under real-world file names.

The stock loaders detect them like the real models: ``tiny-sd15`` as SD15, ``tiny-ip2p`` as SD15_instructpix2pix
(CheckpointLoaderSimple: UNet, CLIP-L text encoder, TAESD VAE) and ``tiny-sdxl-unet`` as SDXL (UNETLoader, UNet only).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from harness.comfy_env import replace_symlink, repo_root, setup_imports

BUILDER_VERSION = 1

# SD15 detection needs model_channels 320, context_dim 768 and conv (not linear) transformer projections. Two levels
# put cross-attention at two token-grid sizes; the loader applies SD15's own 8 heads (weights do not depend on heads).
SD15_UNET = {
    "image_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 320,
    "num_res_blocks": [1, 1],
    "channel_mult": [1, 1],
    "transformer_depth": [1, 1],
    "transformer_depth_output": [1, 1, 1, 1],
    "transformer_depth_middle": 1,
    "context_dim": 768,
    "use_linear_in_transformer": False,
    "use_spatial_transformer": True,
    "legacy": False,
    "num_heads": 8,
    "num_head_channels": -1,
    "adm_in_channels": None,
    "use_temporal_attention": False,
    "use_temporal_resblock": False,
}

# SDXL detection pins model_channels 320, context_dim 2048, adm_in_channels 2816, linear projections and the input
# transformer depths [0, 0, 2, 2, 10, 10]. Width 320 on all three levels, one middle transformer and none in the
# output blocks keep it at 140 M parameters (279 MB in fp16); SDXL's real widths would need 2.6 G.
SDXL_UNET = {
    **SD15_UNET,
    "num_res_blocks": [2, 2, 2],
    "channel_mult": [1, 1, 1],
    "transformer_depth": [0, 0, 2, 2, 10, 10],
    "transformer_depth_output": [0] * 9,
    "transformer_depth_middle": 1,
    "context_dim": 2048,
    "use_linear_in_transformer": True,
    "num_heads": -1,
    "num_head_channels": 64,
    "num_classes": "sequential",
    "adm_in_channels": 2816,
}


def _init_parameters(module: torch.nn.Module, seed: int) -> None:
    """Overwrite every parameter (ComfyUI's ops leave them uninitialised) from a seeded generator.

    Weights with two or more dims ~ N(0, 1/fan_in), 1-D weights (norms) = 1, biases = 0; 0-dim parameters keep the
    constant their constructor set.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if param.dim() >= 2:
                param.normal_(0.0, param[0].numel() ** -0.5, generator=generator)
            elif name.endswith("bias"):
                param.zero_()
            elif param.dim() == 1:
                param.fill_(1.0)


def random_unet(config: dict, seed: int) -> torch.nn.Module:
    """A ComfyUI ``UNetModel`` built from ``config`` with seeded random weights, fp32 on the CPU."""
    setup_imports()
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    unet = UNetModel(**config, dtype=torch.float32, device="cpu", operations=comfy.ops.disable_weight_init)
    _init_parameters(unet, seed)
    return unet


def _save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Save as fp16 safetensors through a temporary file in the same folder, then rename."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    half = {key: value.detach().to(torch.float16).contiguous() for key, value in tensors.items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        save_file(half, tmp, metadata={"format": "pt"})
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _checkpoint(unet_config: dict, seed: int, path: Path) -> None:
    setup_imports()
    import comfy.clip_model
    import comfy.ops
    import comfy.taesd.taesd

    unet = random_unet(unet_config, seed)
    config = json.loads((Path(comfy.clip_model.__file__).parent / "sd1_clip_config.json").read_text())
    clip = comfy.clip_model.CLIPTextModel(config, torch.float32, "cpu", comfy.ops.disable_weight_init)
    _init_parameters(clip, seed + 1)
    vae = comfy.taesd.taesd.TAESD(latent_channels=4)
    _init_parameters(vae, seed + 2)
    tensors = {}
    for prefix, module in (
        ("model.diffusion_model.", unet),
        ("cond_stage_model.transformer.", clip),
        ("first_stage_model.", vae),
    ):
        tensors.update({prefix + key: value for key, value in module.state_dict().items()})
    _save(tensors, path)


def build_sd15(path: Path) -> None:
    """Write a tiny SD1.5 checkpoint (44 M-param UNet, random full CLIP-L, TAESD) to ``path``."""
    _checkpoint(SD15_UNET, 1000, path)


def build_ip2p(path: Path) -> None:
    """Write a tiny InstructPix2Pix checkpoint (the SD1.5 layout with an 8-channel UNet input) to ``path``."""
    _checkpoint({**SD15_UNET, "in_channels": 8}, 2000, path)


def build_sdxl_unet(path: Path) -> None:
    """Write a tiny UNet-only SDXL diffusion model (no text encoder, no VAE) to ``path``."""
    _save(random_unet(SDXL_UNET, 3000).state_dict(), path)


TINY_MODELS: dict[str, tuple[str, Callable[[Path], None]]] = {
    "tiny-sd15.safetensors": ("checkpoints", build_sd15),
    "tiny-ip2p.safetensors": ("checkpoints", build_ip2p),
    "tiny-sdxl-unet.safetensors": ("diffusion_models", build_sdxl_unet),
}

STAND_INS: dict[str, str] = {
    "v1-5-pruned-emaonly-fp16.safetensors": "tiny-sd15.safetensors",
    "instruct-pix2pix-00-22000.safetensors": "tiny-ip2p.safetensors",
}


def default_cache_dir() -> Path:
    """Where built models are kept between runs: ``<repo>/.cache/tiny_models``."""
    return repo_root() / ".cache" / "tiny_models"


def _cached(name: str, cache_dir: Path) -> Path:
    stem = name.removesuffix(".safetensors")
    path = cache_dir / f"{stem}-v{BUILDER_VERSION}.safetensors"
    if not path.is_file():
        TINY_MODELS[name][1](path)
        for stale in cache_dir.glob(f"{stem}-v*.safetensors"):
            if stale != path:
                stale.unlink()
    return path


def ensure_models(models_dir: Path, cache_dir: Path | None = None) -> dict[str, Path]:
    """Build missing tiny models into the cache and symlink them into ``models_dir/<folder>/``.

    Each appears under its own name and under every ``STAND_INS`` name that maps to it. Returns the file names the
    loaders list mapped to the symlinks.
    """
    cache_dir = default_cache_dir() if cache_dir is None else cache_dir
    exposed: dict[str, Path] = {}
    for name, (folder, _) in TINY_MODELS.items():
        target = _cached(name, cache_dir).resolve()
        aliases = [name] + [alias for alias, source in STAND_INS.items() if source == name]
        for alias in aliases:
            link = models_dir / folder / alias
            replace_symlink(link, target)
            exposed[alias] = link
    return exposed
