"""The conditions of MCDM's guidance branches, built once per source image from ComfyUI CONDITIONING, IMAGE and VAE.

- the image embedding c_im of the source image and the unconditional one (a black image of the same size through
  CLIP vision and the VAE, as the released pipeline does);
- the concat latent c_s: the source image's VAE latent (ComfyUI's VAE returns the distribution's mode; the release
  samples it), scaled inside the model (``MCDMUNetModel``); "zero concat" is the all-zero scaled latent;
- per branch, a CONDITIONING whose cross-attention tensors are [text ; image tokens] and whose
  ``concat_latent_image`` holds the source latent (absent for the zero-concat branches).

The text part is at most 77 tokens: MCDM was trained (and the release runs) with CLIP's tokenizer truncating every
prompt to 77 tokens, so its cross-attention has only ever seen 77 text + 50 image tokens. ComfyUI encodes a longer
prompt as several 77-token chunks (154, 231, … tokens); those are cut to the first chunk, which is the release's
truncation, with a warning in the log and on the node.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from ...core.mcdm.adapter import mcdm_context
from ..common.node_text import show_on_node
from .model_file import CONCAT_CHANNELS, MCDM

LATENT_DOWNSCALE = 8
TEXT_TOKENS = 77


@dataclass(frozen=True)
class SourceEmbedding:
    """What the guidance branches need from the source image: raw VAE latent, c_im and the unconditional c_im."""

    latent: torch.Tensor
    tokens: torch.Tensor
    uncond_tokens: torch.Tensor


def check_mcdm_model(model: Any, name: str = "model") -> None:
    """A clear error unless ``model`` is an 8-channel MCDM UNet (not SD1.5, not InstructPix2Pix)."""
    from .model_file import MCDMUNetModel

    inner = getattr(model, "model", None)
    channels = getattr(getattr(inner, "model_config", None), "unet_config", {}).get("in_channels")
    if not isinstance(inner, MCDMUNetModel):
        raise ValueError(
            f"{name}: expected the 8-channel MCDM UNet (from MCDM Loader or MCDM Trainer); got a "
            f"{type(inner).__name__} with {channels} input channels"
        )


def check_source_image(image: torch.Tensor, name: str = "source_image") -> torch.Tensor:
    if image.dim() != 4 or image.shape[-1] < 3:
        raise ValueError(f"{name}: expected an IMAGE [B, H, W, 3], got shape {tuple(image.shape)}")
    height, width = image.shape[1:3]
    if height % LATENT_DOWNSCALE or width % LATENT_DOWNSCALE:
        raise ValueError(
            f"{name}: {width}×{height} is not a multiple of {LATENT_DOWNSCALE} on both sides; the source latent "
            "must align pixel for pixel with the edited latent (crop or resize the image, e.g. ImageScale)"
        )
    return image[..., :3]


def encode_source(mcdm: MCDM, vae: Any, image: torch.Tensor, name: str = "source_image") -> SourceEmbedding:
    """VAE latent, c_im and unconditional c_im of ``image`` (no gradient)."""
    if mcdm.vision is None:
        raise ValueError(
            "mcdm: it has no CLIP vision tower; connect a Joint CLIP Loader (CLIP ViT-B/32) or a CLIP_VISION to "
            "MCDM Loader"
        )
    image = check_source_image(image, name)
    black = torch.zeros_like(image)
    with torch.no_grad():
        latent = vae.encode(image).float().cpu()
        black_latent = vae.encode(black).float().cpu()
        if latent.shape[1] != CONCAT_CHANNELS:
            raise ValueError(f"vae: its latents have {latent.shape[1]} channels; MCDM needs an SD1.x VAE (4)")
        tokens = mcdm.image_tokens(mcdm.vision.hidden_states(image), mcdm.scale_latent(latent))
        uncond = mcdm.image_tokens(mcdm.vision.hidden_states(black), mcdm.scale_latent(black_latent))
    return SourceEmbedding(latent, tokens.detach().float(), uncond.detach().float())


def trained_text_length(conditioning: list, name: str) -> list:
    """CONDITIONING whose text tensors keep only their first 77 tokens (the release's truncation), with a warning
    naming the input when a prompt was longer; shorter conditioning is returned as it is."""
    longest = max((text.shape[1] for text, _ in conditioning), default=0)
    if longest <= TEXT_TOKENS:
        return conditioning
    show_on_node(
        f"MCDM: {name} has {longest} text tokens (a prompt past CLIP's 77, or concatenated conditionings); MCDM was "
        f"trained on {TEXT_TOKENS} text tokens, so only the first {TEXT_TOKENS} are used, as the released code "
        "truncates. Shorten the prompt to keep all of it.",
        logging.WARNING,
    )
    return [[text[:, :TEXT_TOKENS], options] for text, options in conditioning]


def branch_conditioning(
    conditioning: list, image_tokens: torch.Tensor, concat_latent: torch.Tensor | None, prompt_type: str
) -> list:
    """CONDITIONING with [text ; image tokens] cross-attention and the concat latent (None: the zero latent)."""
    out = []
    for text, options in conditioning:
        entry = {key: value for key, value in options.items() if key != "concat_latent_image"}
        if concat_latent is not None:
            entry["concat_latent_image"] = concat_latent
        entry["prompt_type"] = prompt_type
        out.append([mcdm_context(text, image_tokens), entry])
    return out
