"""The pack's modules as the running ComfyUI loaded them, for lab models that hold the pack's own classes.

A ComfyUI server loads the checkout as a custom node under a module name made from its folder's path
(``custom_nodes/precise-edit-checkout`` in the harness, any folder name on a user's machine), while the lab's code
imports the pack as ``precise_edit``. The two are separate copies of every module, so an object built from one copy's
class fails the other copy's ``isinstance`` checks (the lab MCDM was refused by MCDM Edit Mask in the server this
way). :func:`pack_module` returns the module from the copy whose nodes ComfyUI runs.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

from harness.comfy_env import repo_root

# A node of the pack whose class tells which copy of the pack ComfyUI registered.
ANCHOR_NODE = "PreciseEdit_MCDMLoader"


def registered_pack_name() -> str:
    """The module name ComfyUI's node list holds the pack under; ``precise_edit`` when it holds none (the lab's own
    training and measuring processes, or a ComfyUI not started yet)."""
    comfy_nodes = sys.modules.get("nodes")
    node = getattr(comfy_nodes, "NODE_CLASS_MAPPINGS", {}).get(ANCHOR_NODE)
    if node is None:
        return "precise_edit"
    module = sys.modules[node.__module__]
    relative = Path(module.__file__ or "").resolve().relative_to(repo_root()).with_suffix("")
    return node.__module__.removesuffix("." + ".".join(relative.parts))


def pack_module(name: str) -> ModuleType:
    """The pack's module ``name`` (dotted from the repository root, e.g. ``nodes.mcdm.model_file``) from the copy of
    the pack whose nodes ComfyUI runs."""
    return importlib.import_module(f"{registered_pack_name()}.{name}")
