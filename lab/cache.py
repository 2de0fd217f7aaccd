"""Trained lab models are kept under ``.cache/lab/``, keyed by a hash of the code that made them, their config and seed.

A fresh clone trains each model once; any change to the world, the model code or the training recipe changes the
key, so a stale file is never loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

LAB_DIR = Path(__file__).resolve().parent
# The files whose text decides what a trained model holds (the part-1 models'; a model may name its own).
SOURCE_FILES = (
    "world.py",
    "models/text_encoder.py",
    "models/unet.py",
    "models/cell_latent.py",
    "train.py",
    "diffusion_training.py",
)


def cache_dir() -> Path:
    return LAB_DIR.parent / ".cache" / "lab"


def model_key(name: str, config: dict[str, Any], source_files: tuple[str, ...] = SOURCE_FILES) -> str:
    """``<name>-<12 hex digits>``: sha256 of the source files, the JSON config (its seed included) and the name."""
    digest = hashlib.sha256(name.encode())
    for relative in source_files:
        digest.update(relative.encode())
        digest.update((LAB_DIR / relative).read_bytes())
    digest.update(json.dumps(config, sort_keys=True).encode())
    return f"{name}-{digest.hexdigest()[:12]}"


def cached_state_dict(
    name: str,
    config: dict[str, Any],
    build: Callable[[], dict[str, torch.Tensor]],
    source_files: tuple[str, ...] = SOURCE_FILES,
) -> dict[str, torch.Tensor]:
    """Load ``<key>.safetensors`` from the cache, or ``build`` it, save it atomically and return it; the key hashes
    ``source_files`` (paths under ``lab/``)."""
    path = cache_dir() / f"{model_key(name, config, source_files)}.safetensors"
    if path.is_file():
        return load_file(str(path))
    state = {key: value.detach().contiguous().cpu() for key, value in build().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(handle)
    try:
        save_file(state, tmp)
        os.replace(tmp, path)
        for stale in path.parent.glob(f"{name}-*.safetensors"):
            if stale != path:
                stale.unlink()
    finally:
        Path(tmp).unlink(missing_ok=True)
    return state
