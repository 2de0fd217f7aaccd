"""The one place the pack imports ComfyUI's V3 node API from.

``comfy_api.latest`` is the API a current ComfyUI recommends; ComfyUI has kept versioned snapshots beside it
(``comfy_api.v0_0_2`` holds the same ``io`` and ``ComfyExtension``). Should a ComfyUI ship without ``latest`` or
move it, the pack keeps working on the snapshot instead of failing at import, and no other module needs to know.
"""

try:
    from comfy_api.latest import ComfyExtension, io
except ImportError:  # a ComfyUI whose `latest` alias is gone or renamed: the frozen v0.0.2 API is the same surface
    from comfy_api.v0_0_2 import ComfyExtension, io

__all__ = ["ComfyExtension", "io"]
