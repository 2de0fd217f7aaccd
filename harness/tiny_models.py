"""Tiny random-weight checkpoints built with ComfyUI's own classes, cached and exposed under real-world file names.

The stock loaders detect them like the real models: ``tiny-sd15`` as SD15, ``tiny-ip2p`` as SD15_instructpix2pix
(CheckpointLoaderSimple: UNet, CLIP-L text encoder, TAESD VAE) and ``tiny-sdxl-unet`` as SDXL (UNETLoader, UNet only).
``tiny-sd21-unclip-l`` is detected as SD21UnclipL (unCLIPCheckpointLoader: UNet, SD2 text encoder, ViT-L/14 CLIP
vision, TAESD); ``tiny-joint-clip`` is a transformers CLIPModel for DeltaEdit's models/clip_joint.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from harness.comfy_env import replace_symlink, repo_root, setup_imports
from harness.example_models import write_name_only_files

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


# SD2.1 unCLIP-L detection adds context_dim 1024, linear projections and adm_in_channels 1536 (768-d image embedding
# + 768-d noise level) to the SD15 pins; 64-channel heads as in SD2.
SD21_UNCLIP_L_UNET = {
    **SD15_UNET,
    "context_dim": 1024,
    "use_linear_in_transformer": True,
    "num_heads": -1,
    "num_head_channels": 64,
    "num_classes": "sequential",
    "adm_in_channels": 1536,
}


def init_parameters(module: torch.nn.Module, seed: int) -> None:
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
    init_parameters(unet, seed)
    return unet


def _save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """Save as fp16 safetensors (with extra ``metadata``) through a temporary file in the same folder, then rename."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    half = {key: value.detach().to(torch.float16).contiguous() for key, value in tensors.items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        save_file(half, tmp, metadata={"format": "pt", **(metadata or {})})
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
    init_parameters(clip, seed + 1)
    vae = comfy.taesd.taesd.TAESD(latent_channels=4)
    init_parameters(vae, seed + 2)
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


def _half_state(module: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    """The module's state dict in fp16 under ``prefix`` (so fp32 copies can be freed while a checkpoint is built)."""
    return {prefix + key: value.detach().to(torch.float16) for key, value in module.state_dict().items()}


def build_sd21_unclip_l(path: Path) -> None:
    """Write a tiny SD2.1 unCLIP-L checkpoint: 2-level UNet, full-size SD2 text encoder and ViT-L/14 vision, TAESD.

    unCLIPCheckpointLoader detects it as SD21UnclipL (SD21UNCLIP) and builds both towers from ComfyUI's own configs,
    so they hold random weights at full size (24 layers of 1024 channels each, 658 M of the 709 M parameters).
    """
    setup_imports()
    import comfy.clip_model
    import comfy.diffusers_convert
    import comfy.ops
    import comfy.taesd.taesd

    configs = Path(comfy.clip_model.__file__).parent
    tensors = _half_state(random_unet(SD21_UNCLIP_L_UNET, 4000), "model.diffusion_model.")
    text_config = json.loads((configs / "text_encoders" / "sd2_clip_config.json").read_text())
    text = comfy.clip_model.CLIPTextModel(text_config, torch.float32, "cpu", comfy.ops.disable_weight_init)
    init_parameters(text, 4001)
    # the text tower in the OpenCLIP layout of released SD2.x checkpoints, converted by ComfyUI's own saver
    openclip = _half_state(text, "cond_stage_model.model.transformer.")
    del text
    tensors.update(comfy.diffusers_convert.convert_text_enc_state_dict_v20(openclip))
    del openclip
    vision_config = json.loads((configs / "clip_vision_config_vitl.json").read_text())
    vision = comfy.clip_model.CLIPVisionModelProjection(
        vision_config, torch.float32, "cpu", comfy.ops.disable_weight_init
    )
    init_parameters(vision, 4002)
    tensors.update(_half_state(vision, "embedder.model.visual."))
    del vision
    vae = comfy.taesd.taesd.TAESD(latent_channels=4)
    init_parameters(vae, 4003)
    tensors.update(_half_state(vae, "first_stage_model."))
    _save(tensors, path)


def build_joint_clip(path: Path) -> None:
    """Write a tiny joint CLIP (transformers CLIPModel keys, both towers and projections) as one file.

    Widths of 64 (one 64-channel head, OpenAI's head size), 2 layers per tower, 32 px images in 8 px patches, a
    32-d projection and the OpenAI vocabulary: JointCLIPLoader infers this configuration from the shapes alone.
    """
    from transformers import CLIPConfig, CLIPModel

    tower = {"hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 1}
    config = CLIPConfig(
        text_config={**tower, "vocab_size": 49408, "hidden_act": "quick_gelu"},
        vision_config={**tower, "image_size": 32, "patch_size": 8, "hidden_act": "quick_gelu"},
        projection_dim=32,
    )
    with torch.random.fork_rng():
        torch.manual_seed(5000)
        model = CLIPModel(config)
    _save(model.state_dict(), path)


# A tiny MCDM UNet (8 input channels, cross-attention width 768 for the 77 text + 50 image tokens): two levels of 32 and
# 64 channels, attention on the first level and in the middle, 4 heads.
MCDM_UNET = {
    **SD15_UNET,
    "in_channels": 8,
    "model_channels": 32,
    "channel_mult": [1, 2],
    "transformer_depth": [1, 0],
    "transformer_depth_output": [1, 1, 0, 0],
    "num_heads": 4,
}


def build_mcdm(path: Path) -> None:
    """Write a tiny MCDM in Precise Edit's format: ``unet.`` (ComfyUI keys), ``adapter.`` and a JSON header.

    The adapter has the release's shapes (CLIP ViT-B/32's 50×768 tokens + 4 VAE tokens from a 32×32 pooled grid →
    50 tokens); its token mixer is eye(50, 54) plus noise so the VAE tokens matter.
    """
    unet = random_unet(MCDM_UNET, 6000)
    generator = torch.Generator().manual_seed(6001)
    adapter = {
        "vae2clip.weight": torch.randn(768, 1024, generator=generator) / 32.0,
        "vae2clip.bias": torch.zeros(768),
        "linear1.weight": torch.eye(50, 54) + 0.05 * torch.randn(50, 54, generator=generator),
        "linear1.bias": torch.zeros(50),
    }
    tensors = {f"unet.{key}": value for key, value in unet.state_dict().items()}
    tensors.update({f"adapter.{key}": value for key, value in adapter.items()})
    adapter_shapes = {"clip_tokens": 50, "latent_channels": 4, "vae_cells": 1024, "width": 768, "output_tokens": 50}
    header = {"format_version": 1, "unet_config": MCDM_UNET, "adapter": adapter_shapes}
    _save(tensors, path, {"precise_edit_mcdm": json.dumps(header)})


def tiny_vit_b32(seed: int = 6002) -> torch.nn.Module:
    """A random joint CLIP (transformers CLIPModel) whose vision tower has ViT-B/32's output shape: 50 tokens of width
    768 (224 px, 32 px patches, one layer, 12 heads of 64); the text tower is 64 wide with one layer."""
    from transformers import CLIPConfig, CLIPModel

    text = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 1}
    vision = {"hidden_size": 768, "intermediate_size": 256, "num_hidden_layers": 1, "num_attention_heads": 12}
    config = CLIPConfig(
        text_config={**text, "vocab_size": 49408, "hidden_act": "quick_gelu"},
        vision_config={**vision, "image_size": 224, "patch_size": 32, "hidden_act": "quick_gelu"},
        projection_dim=32,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return CLIPModel(config).eval()


def build_clip_vit_b32(path: Path) -> None:
    """Write ``tiny_vit_b32`` as one file JointCLIPLoader reads (configuration inferred from the shapes)."""
    _save(tiny_vit_b32().state_dict(), path)


def build_sam(path: Path) -> None:
    """Write a tiny Segment Anything state dict (86 k params, 64 px input) in the official ``torch.save`` format.

    segment-anything's own classes at reduced sizes (ViT width 32, depth 2, patch 8, window 4, block 1 global;
    prompt/decoder width 32). The hypernetwork outputs are scaled by 300 and the IoU head's bias set to 0.9 so that
    the released thresholds (predicted IoU 0.88, stability 0.95) let masks through on a random model.
    """
    from functools import partial

    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(4000)
        sam = Sam(
            image_encoder=ImageEncoderViT(
                depth=2,
                embed_dim=32,
                img_size=64,
                norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                num_heads=2,
                patch_size=8,
                use_rel_pos=True,
                global_attn_indexes=(1,),
                window_size=4,
                out_chans=32,
            ),
            prompt_encoder=PromptEncoder(
                embed_dim=32, image_embedding_size=(8, 8), input_image_size=(64, 64), mask_in_chans=8
            ),
            mask_decoder=MaskDecoder(
                transformer=TwoWayTransformer(depth=2, embedding_dim=32, mlp_dim=64, num_heads=8),
                transformer_dim=32,
                iou_head_hidden_dim=32,
            ),
        )
    with torch.no_grad():
        for mlp in sam.mask_decoder.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(300.0)
        sam.mask_decoder.iou_prediction_head.layers[-1].bias.fill_(0.9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(sam.state_dict(), tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def build_magicbrush_unet(path: Path) -> None:
    """Write a tiny UNet-only InstructPix2Pix diffusion model with its own weights (MagicBrush's stand-in)."""
    _save(random_unet({**SD15_UNET, "in_channels": 8}, 6000).state_dict(), path)


# The cell-colour VAE's latent per unit of colour: scaled SD1.x latents (×0.18215) of 0.18215 / 0.025 = 7.3 per
# unit, so colours in [0, 1] give latents within ±3.6 and a typical picture a standard deviation near 1, as the
# noise schedule expects.
CELL_VAE_SCALE = 0.025


def cell_vae() -> torch.nn.Module:
    """A TAESD whose weights make it an exact 8×8 cell-colour autoencoder (for tests that read latents as colours).

    Encoder: channels 0-2 carry R, G, B through every block (zero residual branches, identity skips, ReLU on
    non-negative values), each stride-2 convolution averages 2×2, and the last convolution subtracts 0.5; channel 3 is
    the grey level. With ``vae_scale`` = ``CELL_VAE_SCALE`` the latent of a cell is ``(mean colour − 0.5) / 0.025``.
    Decoder: the inverse (nearest-neighbour upsampling), exact up to TAESD's tanh clamp on its input (≤ 1 % at the
    extreme colours). Random TAESD latents vary by about 1e-3, far below the unit scale the noise schedule assumes.
    """
    setup_imports()
    import comfy.taesd.taesd

    vae = comfy.taesd.taesd.TAESD(latent_channels=4)
    with torch.no_grad():
        for param in vae.parameters():
            param.zero_()
        encoder, decoder = vae.taesd_encoder, vae.taesd_decoder
        for c in range(3):
            encoder[0].weight[c, c, 1, 1] = 1.0
            for index in (2, 6, 10):
                encoder[index].weight[c, c, 1:3, 1:3] = 0.25
            encoder[14].weight[c, c, 1, 1] = 1.0
            encoder[14].weight[3, c, 1, 1] = 1.0 / 3.0
            decoder[1].weight[c, c, 1, 1] = 1.0
            decoder[1].bias[c] = 0.5
            for index in (7, 12, 17):
                decoder[index].weight[c, c, 1, 1] = 1.0
            decoder[19].weight[c, c, 1, 1] = 1.0
        encoder[14].bias.fill_(-0.5)
        vae.vae_scale.fill_(CELL_VAE_SCALE)
    return vae


def build_cell_vae(path: Path) -> None:
    """Write ``cell_vae`` as a VAE file the stock VAELoader reads (models/vae)."""
    _save(cell_vae().state_dict(), path)


def pickled(source: str) -> Callable[[Path], None]:
    """A builder writing the tiny model ``source`` as a ``torch.save`` checkpoint (``{"state_dict": ...}``), for
    stand-ins of files published only as .ckpt (ComfyUI reads a file by its suffix)."""

    def build(path: Path) -> None:
        from safetensors.torch import load_file

        tensors = load_file(_cached(source, path.parent))
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        try:
            torch.save({"state_dict": tensors}, tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)

    return build


TINY_MODELS: dict[str, tuple[str, Callable[[Path], None]]] = {
    "tiny-sd15.safetensors": ("checkpoints", build_sd15),
    "tiny-ip2p.safetensors": ("checkpoints", build_ip2p),
    "tiny-sdxl-unet.safetensors": ("diffusion_models", build_sdxl_unet),
    "tiny-sd21-unclip-l.safetensors": ("checkpoints", build_sd21_unclip_l),
    "tiny-joint-clip.safetensors": ("clip_joint", build_joint_clip),
    "tiny-sam.pth": ("sams", build_sam),
    "tiny-mcdm.safetensors": ("mcdm", build_mcdm),
    "tiny-clip-vit-b32.safetensors": ("clip_joint", build_clip_vit_b32),
    "tiny-magicbrush-unet.safetensors": ("diffusion_models", build_magicbrush_unet),
    "tiny-cell-vae.safetensors": ("vae", build_cell_vae),
    "tiny-sd21-unclip-l.ckpt": ("checkpoints", pickled("tiny-sd21-unclip-l.safetensors")),
    "tiny-magicbrush-unet.ckpt": ("diffusion_models", pickled("tiny-magicbrush-unet.safetensors")),
}

STAND_INS: dict[str, str] = {
    "v1-5-pruned-emaonly-fp16.safetensors": "tiny-sd15.safetensors",
    "instruct-pix2pix-00-22000.safetensors": "tiny-ip2p.safetensors",
    "sd21-unclip-l.safetensors": "tiny-sd21-unclip-l.safetensors",
    "clip-vit-large-patch14.safetensors": "tiny-joint-clip.safetensors",
    "sam_vit_b_01ec64.pth": "tiny-sam.pth",
    "mcdm-outfit.safetensors": "tiny-mcdm.safetensors",
    "clip-vit-base-patch32.safetensors": "tiny-clip-vit-b32.safetensors",
    "MagicBrush-epoch-52-step-4999.safetensors": "tiny-magicbrush-unet.safetensors",
    "sam_vit_h_4b8939.pth": "tiny-sam.pth",
    # the example workflows name the files as published (Hugging Face has them only as .ckpt)
    "sd21-unclip-l.ckpt": "tiny-sd21-unclip-l.ckpt",
    "MagicBrush-epoch-52-step-4999.ckpt": "tiny-magicbrush-unet.ckpt",
}


def default_cache_dir() -> Path:
    """Where built models are kept between runs: ``<repo>/.cache/tiny_models``."""
    return repo_root() / ".cache" / "tiny_models"


def _cached(name: str, cache_dir: Path) -> Path:
    """The built file of ``name`` in ``cache_dir``, named ``<stem>-v<BUILDER_VERSION><suffix>`` (format kept)."""
    stem, suffix = Path(name).stem, Path(name).suffix
    path = cache_dir / f"{stem}-v{BUILDER_VERSION}{suffix}"
    if not path.is_file():
        TINY_MODELS[name][1](path)
        for stale in cache_dir.glob(f"{stem}-v*{suffix}"):
            if stale != path:
                stale.unlink()
    return path


def ensure_models(models_dir: Path, cache_dir: Path | None = None) -> dict[str, Path]:
    """Build missing tiny models into the cache and symlink them into ``models_dir/<folder>/``.

    Each appears under its own name and under every ``STAND_INS`` name that maps to it; the published files too big
    for a stand-in get an empty file under their names (``harness.example_models.NAME_ONLY``, for validation only).
    Returns the file names the loaders list mapped to the symlinks.
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
    write_name_only_files(models_dir)
    return exposed
