"""The model folders of DeltaEdit: ``models/clip_joint`` (joint CLIPs) and ``models/delta_mappers`` (trained mappers).

Both list ``.safetensors`` files only. Paths a user declares for them in extra_model_paths.yaml are kept; the default
folder under ComfyUI's models directory is added to them.
"""

import os
from pathlib import Path

import folder_paths

CLIP_JOINT = "clip_joint"
DELTA_MAPPERS = "delta_mappers"
EXTENSIONS = {".safetensors"}


def register_model_folder(name: str) -> None:
    default = os.path.join(folder_paths.models_dir, name)
    if name in folder_paths.folder_names_and_paths:
        paths, extensions = folder_paths.folder_names_and_paths[name]
        if default not in paths:
            paths.append(default)
        extensions.update(EXTENSIONS)
    else:
        folder_paths.folder_names_and_paths[name] = ([default], set(EXTENSIONS))


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


for _folder in (CLIP_JOINT, DELTA_MAPPERS):
    register_model_folder(_folder)
