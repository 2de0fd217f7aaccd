"""Locate ComfyUI and start it inside this process: sys.path order, CPU mode, folders, stock and Precise Edit nodes."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

PACKAGE_NAME = "precise_edit"
MODEL_FOLDERS = (
    "checkpoints",
    "vae",
    "embeddings",
    "loras",
    "diffusion_models",
    "text_encoders",
    "clip_joint",
    "delta_mappers",
    "sams",
    "mcdm",
    "action_classifiers",
)

_bootstrapped: Path | None = None


@dataclass(frozen=True)
class ComfyDirs:
    """Folders of the in-process ComfyUI: its base dir (output, input, temp, user) and the models it reads."""

    base_dir: Path
    models_dir: Path


def repo_root() -> Path:
    """The pack's repository root (the folder holding ``harness/``)."""
    return Path(__file__).resolve().parents[1]


def comfyui_root() -> Path:
    """The ComfyUI tree: ``$COMFYUI_PATH`` if set, else ``<repo>/.cache/ComfyUI``."""
    env = os.environ.get("COMFYUI_PATH")
    root = Path(env).expanduser().resolve() if env else repo_root() / ".cache" / "ComfyUI"
    if not (root / "main.py").is_file():
        origin = "COMFYUI_PATH" if env else "the embedded ComfyUI"
        raise FileNotFoundError(
            f"no ComfyUI found at {root} ({origin}): run `make env`, or set COMFYUI_PATH to a ComfyUI checkout"
        )
    return root


def _resolves_to(entry: str, path: Path) -> bool:
    try:
        return Path(entry or ".").resolve() == path
    except OSError:
        return False


def _put_last(path: Path) -> None:
    sys.path[:] = [entry for entry in sys.path if not _resolves_to(entry, path)]
    sys.path.append(str(path))


def replace_symlink(link: Path, target: Path) -> None:
    """Make ``link`` a symlink to ``target`` (atomically replacing another symlink there); no-op if it already is."""
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target, target_is_directory=target.is_dir())
    os.replace(tmp, link)


def ensure_pack_importable() -> None:
    """Link ``.cache/pkgs/precise_edit`` to the repo and append it and the repo root (for ``harness``) to sys.path.

    The repo root goes last because the pack's ``nodes/`` folder must never shadow ComfyUI's ``nodes`` module.
    """
    repo = repo_root()
    pkgs = repo / ".cache" / "pkgs"
    replace_symlink(pkgs / PACKAGE_NAME, repo)
    _put_last(repo)
    if not any(_resolves_to(entry, pkgs) for entry in sys.path):
        sys.path.append(str(pkgs))


def setup_imports(cpu: bool = True) -> None:
    """Make ``comfy`` importable ahead of the repo root and, with ``cpu``, force ComfyUI's CPU mode before
    model_management loads (benchmarks pass ``cpu=False`` to use a GPU)."""
    ensure_pack_importable()
    root = comfyui_root()
    if not any(_resolves_to(entry, root) for entry in sys.path):
        sys.path.insert(0, str(root))
    loaded_nodes = sys.modules.get("nodes")
    if loaded_nodes is not None and Path(getattr(loaded_nodes, "__file__", "") or "").resolve() != root / "nodes.py":
        raise RuntimeError(
            f"`nodes` was imported from {loaded_nodes.__file__}, not from ComfyUI: the repo root came before "
            f"{root} on sys.path"
        )
    import comfy.cli_args

    if "comfy.model_management" not in sys.modules:
        comfy.cli_args.args.cpu = cpu


def bootstrap(base_dir: Path) -> None:
    """Start ComfyUI in this process with its folders under ``base_dir``; later calls with the same dir do nothing.

    Output, input, temp and user folders go to ``base_dir/<name>``; ``base_dir/models/<folder>`` is registered
    first for each of MODEL_FOLDERS (stock folders and the pack's own). Stock nodes load (no custom or API nodes),
    then the nodes of the imported ``precise_edit`` package from its ``comfy_entrypoint``.
    """
    global _bootstrapped
    base_dir = Path(base_dir).resolve()
    if _bootstrapped is not None:
        if _bootstrapped != base_dir:
            raise RuntimeError(f"ComfyUI is already bootstrapped in this process with base dir {_bootstrapped}")
        return
    setup_imports()
    # ComfyUI's own `utils` package must load before `nodes` puts comfy/ (holding comfy/utils.py) first on sys.path.
    importlib.import_module("utils.extra_config")
    import folder_paths

    for name, setter in (
        ("output", folder_paths.set_output_directory),
        ("input", folder_paths.set_input_directory),
        ("temp", folder_paths.set_temp_directory),
        ("user", folder_paths.set_user_directory),
    ):
        (base_dir / name).mkdir(parents=True, exist_ok=True)
        setter(str(base_dir / name))
    for folder in MODEL_FOLDERS:
        path = base_dir / "models" / folder
        path.mkdir(parents=True, exist_ok=True)
        folder_paths.add_model_folder_path(folder, str(path), is_default=True)
    asyncio.run(_load_nodes())
    _bootstrapped = base_dir


async def _load_nodes() -> None:
    import nodes

    await nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False)
    extension = await importlib.import_module(PACKAGE_NAME).comfy_entrypoint()
    for cls in await extension.get_node_list():
        schema = cls.GET_SCHEMA()
        nodes.NODE_CLASS_MAPPINGS[schema.node_id] = cls
        cls.RELATIVE_PYTHON_MODULE = f"custom_nodes.{PACKAGE_NAME}"
        if schema.display_name is not None:
            nodes.NODE_DISPLAY_NAME_MAPPINGS[schema.node_id] = schema.display_name


def is_bootstrapped() -> bool:
    """Whether ``bootstrap`` has run in this process."""
    return _bootstrapped is not None
