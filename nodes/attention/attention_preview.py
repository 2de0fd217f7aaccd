"""Attention maps on the node that records them: each recorded word's heat map over the image being sampled.

Capture Cross-Attention and Instruction Locator run before the sampler that fills their store, so they cannot return
the maps as their own output. Instead the model they return carries an ``OUTER_SAMPLE`` wrapper (a ComfyUI extension
point) for the node's id. While that model samples, the wrapper reads the sampler's denoised estimate x̂₀ at each
step and, at most every ``LIVE_SECONDS``, sends the overlays to the recording node as a progress preview addressed to
it (ComfyUI's preview-with-metadata message; clients that do not support it get none). When sampling ends it saves
the final overlays in ComfyUI's temp folder and sends them to the node as its ``executed`` images, which the frontend
shows on the node in the classic canvas and in Nodes 2.0. Without a ComfyUI server (scripts, the in-process executor)
nothing is added.

An overlay is ``(1 − α)·x̂₀ + α·jet(m)`` per word, with x̂₀ the latent shown through the model's latent-to-RGB factors
(ComfyUI's cheap preview) and m the word's map normalised to a maximum of 1; the words sit side by side, each
labelled.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from ...core.attention.attention_store import AttentionStore
from ...core.attention.heatmap import heatmap

LIVE_SECONDS = 0.5
OVERLAY_ALPHA = 0.5
TILE_SIDE = 256
LABEL_HEIGHT = 14
WRAPPER_KEY = "precise_edit_attention_preview"


def latent_picture(x0: torch.Tensor, latent_format: Any) -> torch.Tensor:
    """``[h, w, 3]`` in [0, 1]: the first latent of ``x0`` through the model's latent-to-RGB factors (grey when the
    latent format has none)."""
    factors = getattr(latent_format, "latent_rgb_factors", None)
    first = x0[0].float().cpu()
    if factors is None or first.ndim != 3 or len(factors) != first.shape[0]:
        return torch.full((*first.shape[-2:], 3), 0.5)
    rgb = first.movedim(0, -1) @ torch.tensor(factors)
    bias = getattr(latent_format, "latent_rgb_factors_bias", None)
    if bias is not None:
        rgb = rgb + torch.tensor(bias)
    return ((rgb + 1.0) / 2.0).clamp(0.0, 1.0)


def overlay_image(store: AttentionStore, picture: torch.Tensor) -> Image.Image:
    """The words' maps (first image of the batch) over ``picture``, side by side, each labelled with its word."""
    height, width = picture.shape[:2]
    scale = TILE_SIDE / max(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    maps = store.word_maps(size)[0].float().cpu()
    maps = maps / maps.flatten(1).amax(1).clamp_min(torch.finfo(maps.dtype).tiny)[:, None, None]
    base = F.interpolate(picture.movedim(-1, 0)[None], size=size, mode="bilinear", align_corners=False)[0]
    tiles = (1 - OVERLAY_ALPHA) * base.movedim(0, -1) + OVERLAY_ALPHA * heatmap(maps)
    strip = torch.cat(list(tiles), dim=1)
    pixels = (strip * 255).round().to(torch.uint8).numpy()
    canvas = Image.new("RGB", (strip.shape[1], strip.shape[0] + LABEL_HEIGHT), "black")
    canvas.paste(Image.fromarray(pixels), (0, LABEL_HEIGHT))
    draw = ImageDraw.Draw(canvas)
    for index, word in enumerate(store.words):
        draw.text((index * size[1] + 3, 1), word, fill="white")
    return canvas


class AttentionPreview:
    """The ``OUTER_SAMPLE`` wrapper showing ``store``'s maps on node ``node_id`` of the prompt being run."""

    def __init__(self, server: Any, store: AttentionStore, node_id: str) -> None:
        self.server = server
        self.store = store
        self.node_id = node_id

    def __call__(self, executor: Any, *args: Any, **kwargs: Any) -> Any:
        args = list(args)
        callback_at = 5  # outer_sample(noise, latent_image, sampler, sigmas, denoise_mask, callback, ...)
        if len(args) > callback_at:
            args[callback_at] = self._watch(args[callback_at], executor.class_obj, self._prompt_id())
        else:
            kwargs["callback"] = self._watch(kwargs.get("callback"), executor.class_obj, self._prompt_id())
        return executor(*args, **kwargs)

    def _prompt_id(self) -> str | None:
        from comfy_execution.utils import get_executing_context

        context = get_executing_context()
        return context.prompt_id if context is not None else getattr(self.server, "last_prompt_id", None)

    def _watch(self, callback: Callable | None, guider: Any, prompt_id: str | None) -> Callable:
        latent_format = guider.model_patcher.model.latent_format
        sent_at = [0.0]

        def on_step(step: int, x0: torch.Tensor, x: torch.Tensor, total_steps: int) -> Any:
            if self.store.layers:
                last = step + 1 >= total_steps
                if last or time.monotonic() - sent_at[0] >= LIVE_SECONDS:
                    sent_at[0] = time.monotonic()
                    image = overlay_image(self.store, latent_picture(x0, latent_format))
                    self._send_live(image, prompt_id)
                    if last:
                        self._send_final(image, prompt_id)
            return None if callback is None else callback(step, x0, x, total_steps)

        return on_step

    def _send_live(self, image: Image.Image, prompt_id: str | None) -> None:
        from comfy_api import feature_flags
        from server import BinaryEventTypes

        server = self.server
        if not feature_flags.supports_feature(server.sockets_metadata, server.client_id, "supports_preview_metadata"):
            return
        metadata = {
            "node_id": self.node_id,
            "display_node_id": self.node_id,
            "real_node_id": self.node_id,
            "parent_node_id": None,
            "prompt_id": prompt_id,
        }
        preview = ("PNG", image, max(image.size))
        server.send_sync(BinaryEventTypes.PREVIEW_IMAGE_WITH_METADATA, (preview, metadata), server.client_id)

    def _send_final(self, image: Image.Image, prompt_id: str | None) -> None:
        import folder_paths

        name = f"precise_edit_attention_{self.node_id}_{uuid.uuid4().hex[:8]}.png"
        image.save(os.path.join(folder_paths.get_temp_directory(), name), compress_level=1)
        output = {"images": [{"filename": name, "subfolder": "", "type": "temp"}]}
        message = {"node": self.node_id, "display_node": self.node_id, "output": output, "prompt_id": prompt_id}
        self.server.send_sync("executed", message, self.server.client_id)


def show_attention_on_node(model: Any, store: AttentionStore) -> Any:
    """``model`` (a clone the node returns) with the preview wrapper for the executing node, when a ComfyUI server
    runs it; else ``model`` unchanged."""
    try:
        from comfy.patcher_extension import WrappersMP
        from comfy_execution.utils import get_executing_context
        from server import PromptServer
    except ImportError:
        return model
    server = getattr(PromptServer, "instance", None)
    context = get_executing_context()
    if server is None or context is None:
        return model
    model.add_wrapper_with_key(WrappersMP.OUTER_SAMPLE, WRAPPER_KEY, AttentionPreview(server, store, context.node_id))
    return model
