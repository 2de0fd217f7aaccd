"""Files that are never seen half-written: each is written to a temporary file in its folder, then renamed.

A rename within one folder is atomic, so a reader (another ComfyUI node, a restarted run) finds either the old file
or the complete new one, and an interrupted or failed write leaves nothing behind.
"""

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save_file


def write_atomically(path: Path, write: Callable[[str], None]) -> None:
    """Create ``path`` (mode 0644, folders as needed) by calling ``write`` on a temporary path, then renaming it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(temporary)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def save_safetensors_atomically(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """``safetensors.torch.save_file(tensors, path, metadata)`` through ``write_atomically``."""
    write_atomically(path, lambda temporary: save_file(tensors, temporary, metadata=metadata))
