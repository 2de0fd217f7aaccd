"""Precise Edit: identity- and background-preserving image editing nodes for ComfyUI.

Only ``comfy_entrypoint`` and ``WEB_DIRECTORY`` live here; the nodes are imported when ComfyUI asks for them, so
``core`` stays importable (and testable) without ComfyUI.

``WEB_DIRECTORY`` makes ComfyUI serve ``js/`` at ``/extensions/<this pack's folder name>/``, where the frontend looks
for a node's help page (``docs/<NodeId>.md``) whatever the folder is called; ``[tool.comfy] web`` in
pyproject.toml serves it only under the project name.
"""

WEB_DIRECTORY = "./js"


async def comfy_entrypoint():
    from .nodes.extension import PreciseEditExtension

    return PreciseEditExtension()
