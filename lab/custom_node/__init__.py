"""The lab's ComfyUI node folder: linked into the harness's server as a custom node pack (never into the pack's list).

ComfyUI imports this folder by path, so the repository root (which holds ``lab`` and ``harness``) is appended to
sys.path, after ComfyUI's own entries, where the repo's ``nodes/`` folder cannot shadow ComfyUI's ``nodes``.
"""

import sys
from pathlib import Path

_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:
    sys.path.append(_REPO)

from lab.loader_node import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
