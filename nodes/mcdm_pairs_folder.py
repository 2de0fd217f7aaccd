"""Where MCDM pairs folders live for ComfyUI: written under the output directory, read from output or input."""

from pathlib import Path

import folder_paths


def _relative(folder: str, name: str) -> Path:
    path = Path(folder.strip()).expanduser()
    if not folder.strip():
        raise ValueError(f"{name} is empty: give a folder name such as 'mcdm_pairs/santa'")
    return path


def pairs_folder_for_writing(folder: str) -> Path:
    """An absolute folder, or one relative to ComfyUI's output directory (it must stay inside it)."""
    path = _relative(folder, "folder")
    if path.is_absolute():
        return path
    root = Path(folder_paths.get_output_directory()).resolve()
    target = (root / path).resolve()
    if target != root and root not in target.parents:
        raise ValueError(f"folder {folder!r} leaves ComfyUI's output directory ({root})")
    return target


def pairs_folder_for_reading(folder: str) -> Path:
    """An absolute folder, or one relative to ComfyUI's output directory (where the generator writes) or input."""
    path = _relative(folder, "pairs_folder")
    candidates = (
        [path]
        if path.is_absolute()
        else [Path(folder_paths.get_output_directory()) / path, Path(folder_paths.get_input_directory()) / path]
    )
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise ValueError(f"pairs_folder {folder!r}: no such folder (looked in {', '.join(map(str, candidates))})")
