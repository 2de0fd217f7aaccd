"""Helpers of the DeltaEdit tests: a single-thread context for training, tiny CLIP models."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import CLIPModel


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one CPU thread: small mappers train several times faster than with a contended thread pool."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def fallback_tokenizer() -> Path:
    """The OpenAI CLIP BPE tokenizer that ships with ComfyUI (the pack's fallback for single-file CLIPs)."""
    from harness.comfy_env import comfyui_root

    return comfyui_root() / "comfy" / "sd1_tokenizer"


def tiny_clip(seed: int = 0, width: int = 32, projection: int = 16, vocab_size: int = 49408) -> CLIPModel:
    """A random joint CLIP (transformers CLIPModel): 2-layer towers of ``width`` channels, 32 px images."""
    from transformers import CLIPConfig, CLIPModel

    heads = max(1, width // 64) if width % 64 == 0 else 2
    tower = {"hidden_size": width, "intermediate_size": 2 * width, "num_hidden_layers": 2, "num_attention_heads": heads}
    config = CLIPConfig(
        text_config={**tower, "vocab_size": vocab_size},
        vision_config={**tower, "image_size": 32, "patch_size": 8},
        projection_dim=projection,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return CLIPModel(config).eval()


def save_tiny_clip(folder: Path, seed: int = 0, **sizes: int) -> CLIPModel:
    """Write ``tiny_clip`` with ``save_pretrained`` (config.json + model.safetensors) into ``folder``."""
    model = tiny_clip(seed, **sizes)
    model.save_pretrained(str(folder), safe_serialization=True)
    return model


def image_batch(count: int, height: int = 40, width: int = 48, seed: int = 0) -> torch.Tensor:
    """A deterministic IMAGE batch ``[count, H, W, 3]`` in [0, 1]."""
    return torch.rand(count, height, width, 3, generator=torch.Generator().manual_seed(seed))


def tiny_clip_vision(model: CLIPModel, folder: Path):
    """A ComfyUI CLIP_VISION built from ``model``'s image tower and projection (the same weights)."""
    import comfy.clip_vision

    vision = model.config.vision_config
    config = {
        "model_type": "clip_vision_model",
        "num_channels": 3,
        "hidden_size": vision.hidden_size,
        "intermediate_size": vision.intermediate_size,
        "num_hidden_layers": vision.num_hidden_layers,
        "num_attention_heads": vision.num_attention_heads,
        "image_size": vision.image_size,
        "patch_size": vision.patch_size,
        "hidden_act": vision.hidden_act,
        "projection_dim": model.config.projection_dim,
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"clip_vision_{model.config.projection_dim}.json"
    path.write_text(json.dumps(config))
    clip_vision = comfy.clip_vision.ClipVisionModel(str(path))
    tower = {k: v for k, v in model.state_dict().items() if k.startswith(("vision_model.", "visual_projection."))}
    missing, _ = clip_vision.load_sd(tower)
    assert not missing, missing
    return clip_vision


def write_images(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` random PNG images (40×48) in ``folder``."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, image in enumerate(image_batch(count, seed=seed)):
        path = folder / f"img_{index:03d}.png"
        Image.fromarray((image.numpy() * 255).round().astype("uint8")).save(path)
        paths.append(path)
    return paths
