"""Helpers of the DeltaEdit tests: a single-thread context for training, tiny CLIP models."""

from __future__ import annotations

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
