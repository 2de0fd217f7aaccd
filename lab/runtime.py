"""ComfyUI in this process for the lab's claims: the harness's in-process ComfyUI plus the lab loader node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness import comfy_env


def start(base_dir: Path) -> None:
    """Bootstrap ComfyUI (stock and pack nodes) under ``base_dir`` and register ``PreciseEditLab_Loader``."""
    comfy_env.bootstrap(base_dir)
    register_nodes()


def register_nodes() -> None:
    """Add the lab's nodes to an in-process ComfyUI that is already started (as the tests' ``comfy`` fixture)."""
    import nodes
    from lab.loader_node import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

    nodes.NODE_CLASS_MAPPINGS.update(NODE_CLASS_MAPPINGS)
    nodes.NODE_DISPLAY_NAME_MAPPINGS.update(NODE_DISPLAY_NAME_MAPPINGS)


def run(prompt: dict[str, Any], outputs: list[str]) -> dict[str, tuple[Any, ...]]:
    """Run an API-format prompt through the harness executor; return the listed nodes' outputs."""
    from harness.executor import run_prompt

    return run_prompt(prompt, outputs)


def save_input_image(image: np.ndarray, name: str) -> str:
    """Write ``image`` ([H, W, 3] in [0, 1]) as a PNG in ComfyUI's input folder for LoadImage; return its name."""
    import folder_paths
    from PIL import Image

    Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8)).save(
        Path(folder_paths.get_input_directory()) / name
    )
    return name
