"""The model folders the pack adds under ComfyUI's models directory, and where new files in them are written.

DeltaEdit's ``models/clip_joint`` (joint CLIPs) and ``models/delta_mappers`` (trained mappers) are registered here;
the other methods register theirs (``sams``, ``action_classifiers``, ``mcdm``) where their loaders live. Paths a user
declares for a folder in extra_model_paths.yaml are kept; the default folder under ComfyUI's models directory is added
to them.
"""

import os
import re
from collections.abc import Iterable
from pathlib import Path

import folder_paths

from .save_names import path_inside

CLIP_JOINT = "clip_joint"
DELTA_MAPPERS = "delta_mappers"
SAFETENSORS = (".safetensors",)


def register_model_folder(name: str, extensions: Iterable[str] = SAFETENSORS) -> None:
    """Make ``models/<name>`` list files with ``extensions`` (added to what the folder already lists)."""
    default = os.path.join(folder_paths.models_dir, name)
    if name in folder_paths.folder_names_and_paths:
        paths, listed = folder_paths.folder_names_and_paths[name]
        if default not in paths:
            paths.append(default)
        listed.update(extensions)
    else:
        folder_paths.folder_names_and_paths[name] = ([default], set(extensions))


def model_path(folder: str, name: str) -> Path:
    """The full path of a file the folder lists, or a FileNotFoundError naming the folder."""
    path = folder_paths.get_full_path(folder, name)
    if path is None:
        raise FileNotFoundError(
            f"{name!r} is not in models/{folder} ({', '.join(folder_paths.get_folder_paths(folder))})"
        )
    return Path(path)


def save_folder(folder: str) -> Path:
    """Where new files of ``folder`` are written: its first path."""
    return Path(folder_paths.get_folder_paths(folder)[0])


def next_free_path(folder: str, prefix: str, input_name: str = "filename_prefix") -> Path:
    """``models/<folder>/<prefix>_NNNNN.safetensors`` with the next unused counter; the prefix may name subfolders
    and is checked by ``save_names`` (``input_name`` is the node input it came from)."""
    target = path_inside(save_folder(folder), prefix, input_name, f"models/{folder}")
    pattern = re.compile(rf"^{re.escape(target.name)}_(\d+)\.safetensors$")
    numbers = [int(m.group(1)) for p in target.parent.glob("*.safetensors") if (m := pattern.match(p.name))]
    return target.parent / f"{target.name}_{max(numbers, default=0) + 1:05d}.safetensors"


def named_path(folder: str, name: str, input_name: str = "name") -> Path:
    """``models/<folder>/<name>.safetensors`` (``.safetensors`` added unless given); ``name`` may name subfolders
    and is checked by ``save_names``."""
    target = path_inside(save_folder(folder), name, input_name, f"models/{folder}")
    return target if target.name.endswith(SAFETENSORS) else target.with_name(target.name + SAFETENSORS[0])


for _folder in (CLIP_JOINT, DELTA_MAPPERS):
    register_model_folder(_folder)
