"""Tiny random MCDMs in the official release's layouts, and a tiny CLIP whose vision tower has ViT-B/32's hidden shape.

- ``tiny_diffusers_unet``: a diffusers ``UNet2DConditionModel`` with 8 input channels and cross-attention width 768
  (two levels of 32 and 64 channels, attention on the first and in the middle);
- ``random_adapter``: the adapter with random weights everywhere (``linear1`` moved off eye(50, 54), so the VAE
  tokens matter);
- ``write_release``: the release as a folder: ``unet/config.json`` + ``diffusion_pytorch_model.safetensors`` (the
  diffusers layout) or ``unet.pth``, and ``adapter.pth``, with the DataParallel ``module.`` prefix the release has;
- ``save_tiny_vit_b32``: harness.tiny_models' CLIPModel whose vision tower returns ViT-B/32's 50 tokens of width
  768, written by save_pretrained.
"""

from __future__ import annotations

from pathlib import Path

import torch

UNET_CONFIG = dict(
    sample_size=8,
    in_channels=8,
    out_channels=4,
    block_out_channels=(32, 64),
    layers_per_block=1,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768,
    attention_head_dim=4,
)


def tiny_diffusers_unet(seed: int = 0, **overrides: object):
    """A random 8-channel diffusers UNet (eval mode, fp32); every parameter drawn from a seeded generator."""
    from diffusers import UNet2DConditionModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**{**UNET_CONFIG, **overrides})
        with torch.no_grad():
            for name, param in unet.named_parameters():
                if param.dim() >= 2:
                    param.normal_(0.0, param[0].numel() ** -0.5)
                elif name.endswith("bias"):
                    param.normal_(0.0, 0.02)
    return unet.eval()


def random_adapter(seed: int = 1):
    """The release's adapter (official shapes) with every weight random."""
    from precise_edit.core.mcdm.adapter import MCDMAdapter

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        adapter = MCDMAdapter()
        with torch.no_grad():
            adapter.linear1.weight.add_(0.05 * torch.randn_like(adapter.linear1.weight))
            adapter.vae2clip.weight.mul_(4.0)
    return adapter.eval()


def write_release(folder: Path, unet, adapter, layout: str = "diffusers") -> Path:
    """Write ``unet`` and ``adapter`` as the release does (``module.`` prefixed state dicts) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    if layout == "diffusers":
        unet.save_pretrained(str(folder / "unet"), safe_serialization=True)
    elif layout == "pth":
        torch.save({f"module.{key}": value for key, value in unet.state_dict().items()}, folder / "unet.pth")
        unet.save_config(str(folder))  # the release has none (SD1.5 is detected); the tiny UNet needs one
    else:
        raise ValueError(layout)
    torch.save({f"module.{key}": value for key, value in adapter.state_dict().items()}, folder / "adapter.pth")
    return folder


def save_tiny_vit_b32(folder: Path, seed: int = 2) -> Path:
    """``tiny_vit_b32`` written by ``save_pretrained``; returns its model.safetensors."""
    from harness.tiny_models import tiny_vit_b32

    tiny_vit_b32(seed).save_pretrained(str(folder), safe_serialization=True)
    return folder / "model.safetensors"


def load_tiny_mcdm(folder: Path, seed: int = 0):
    """A tiny release written to ``folder`` and loaded by MCDM Loader's code, with the tiny ViT-B/32 attached.

    Returns ``(mcdm, diffusers_unet)``: the same UNet weights in ComfyUI and in diffusers.
    """
    from precise_edit.core.deltaedit.joint_clip import load_joint_clip
    from precise_edit.nodes.deltaedit.joint_clip_model import JointClipModel, tokenizer_folder
    from precise_edit.nodes.mcdm.nodes_train import checked_vision, load_release

    unet = tiny_diffusers_unet(seed)
    write_release(folder / "release", unet, random_adapter(seed + 1), "diffusers")
    mcdm = load_release(folder / "release", "tiny-mcdm")
    joint = JointClipModel(load_joint_clip(save_tiny_vit_b32(folder / "vit", seed + 2), tokenizer_folder(), "vit"))
    return mcdm.with_vision(checked_vision(joint, mcdm, "joint_clip")), unet


def text_conditioning(seed: int, tokens: int = 77) -> list:
    """A CONDITIONING with one random [1, tokens, 768] text embedding."""
    generator = torch.Generator().manual_seed(seed)
    return [[torch.randn(1, tokens, 768, generator=generator), {}]]


def source_image(height: int = 64, width: int = 64, seed: int = 4) -> torch.Tensor:
    """A smooth deterministic IMAGE [1, H, W, 3] in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 4, 4, generator=generator)
    image = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    return image.movedim(1, -1).contiguous()


def reference_branches(mcdm, vae, image, positive, negative, source=None):
    """Every branch's (context, concat) built from the formulas, not from the pack's conditioning code."""
    black = torch.zeros_like(image)
    with torch.no_grad():
        latent = vae.encode(image) * 0.18215
        tokens = mcdm.adapter(mcdm.vision.hidden_states(image), latent)
        uncond = mcdm.adapter(mcdm.vision.hidden_states(black), vae.encode(black) * 0.18215)
    neg, pos = negative[0][0], positive[0][0]
    zero = torch.zeros_like(latent)
    branches = {
        "uncond": (torch.cat([neg, uncond], 1), zero),
        "img_p": (torch.cat([neg, tokens], 1), zero),
        "img_p_concat": (torch.cat([neg, tokens], 1), latent),
        "all": (torch.cat([pos, tokens], 1), latent),
    }
    if source is not None:
        branches["all_source"] = (torch.cat([source[0][0], tokens], 1), latent)
    return branches
