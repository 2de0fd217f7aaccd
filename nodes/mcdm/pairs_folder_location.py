"""Where MCDM pairs folders live for ComfyUI: written under the output directory, read from output or input.

A pairs folder is named relative to those directories and checked by ``save_names`` (so ``..``, absolute paths,
drive letters and UNC shares are refused on every OS): a node on a shared server writes and reads only where
ComfyUI keeps its own images, never a folder elsewhere that a user types in.
"""

from pathlib import Path

import folder_paths

from ..common.save_names import name_parts, path_inside

OUTPUT = "ComfyUI's output directory"
OUTPUT_OR_INPUT = "ComfyUI's output or input directory"


def pairs_folder_for_writing(folder: str) -> Path:
    """The folder ``folder`` names inside ComfyUI's output directory (not created here)."""
    return path_inside(Path(folder_paths.get_output_directory()), folder, "folder", OUTPUT)


def pairs_folder_for_reading(folder: str) -> Path:
    """The folder ``folder`` names inside ComfyUI's output directory (where the generator writes), else input."""
    parts = name_parts(folder, "pairs_folder", OUTPUT_OR_INPUT)
    candidates = [
        Path(root).joinpath(*parts)
        for root in (folder_paths.get_output_directory(), folder_paths.get_input_directory())
    ]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise ValueError(f"pairs_folder {folder!r}: no such folder (looked in {', '.join(map(str, candidates))})")
