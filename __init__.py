"""Precise Edit: identity- and background-preserving image editing nodes for ComfyUI.

Only ``comfy_entrypoint`` lives here; the nodes are imported when ComfyUI asks for them, so ``core`` stays
importable (and testable) without ComfyUI.
"""


async def comfy_entrypoint():
    from .nodes.extension import PreciseEditExtension

    return PreciseEditExtension()
