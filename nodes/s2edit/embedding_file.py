"""Textual-inversion embedding files for ``embedding:<name>`` in any prompt (stock CLIP Text Encode).

ComfyUI's ``load_embed`` reads a safetensors file from ``models/embeddings`` and takes the tensor under the
tokenizer's ``embedding_key``: ``clip_l`` ``[n, 768]`` on SD1.x, ``clip_l`` + ``clip_g`` ``[n, 1280]`` on SDXL,
``clip_h`` ``[n, 1024]`` on SD2.x.
"""

import re
from pathlib import Path

import folder_paths
import torch

from ...core.files.atomic_file import save_safetensors_atomically

EMBEDDINGS = "embeddings"
LORAS = "loras"
NAME = re.compile(r"^[A-Za-z0-9_\-]+$")


def check_name(name: str) -> str:
    """A file stem usable after ``embedding:`` (no spaces, commas or path separators)."""
    stripped = name.strip()
    if not NAME.match(stripped):
        raise ValueError(
            f"name {name!r}: use letters, digits, '_' and '-' only, so that 'embedding:<name>' reads as one word"
        )
    return stripped


def free_stem(name: str) -> str:
    """``<name>_NNNNN`` with the next counter unused in both ``models/embeddings`` and ``models/loras``."""
    pattern = re.compile(rf"^{re.escape(name)}_(\d+)\.safetensors$")
    numbers = [
        int(match.group(1))
        for folder in (EMBEDDINGS, LORAS)
        for path in folder_paths.get_folder_paths(folder)
        if Path(path).is_dir()
        for file in Path(path).iterdir()
        if (match := pattern.match(file.name))
    ]
    return f"{name}_{max(numbers, default=0) + 1:05d}"


def save_folder(folder: str) -> Path:
    return Path(folder_paths.get_folder_paths(folder)[0])


def save_embedding(vectors: dict[str, torch.Tensor], stem: str, metadata: dict[str, str]) -> Path:
    """Write ``models/embeddings/<stem>.safetensors`` with one ``[n, width]`` tensor per text encoder."""
    path = save_folder(EMBEDDINGS) / f"{stem}.safetensors"
    tensors = {key: value.detach().float().cpu().contiguous() for key, value in vectors.items()}
    save_safetensors_atomically(tensors, path, metadata)
    return path
