"""The node list ComfyUI registers for Precise Edit: the ``NODES`` lists of the method packages, joined."""

from . import attention, deltaedit, mcdm, s2edit, zone
from .common.comfy_node_api import ComfyExtension, io

NODES: list[type[io.ComfyNode]] = [*attention.NODES, *s2edit.NODES, *zone.NODES, *deltaedit.NODES, *mcdm.NODES]


class PreciseEditExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)
