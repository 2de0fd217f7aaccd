"""The node list ComfyUI registers for Precise Edit: the ``NODES`` lists of the method packages, joined."""

from . import attention, deltaedit, mcdm, s2edit, zone
from .common.comfy_node_api import ComfyExtension, io
from .common.example_inputs import provide_example_inputs
from .common.token_route import register_token_route

NODES: list[type[io.ComfyNode]] = [*attention.NODES, *s2edit.NODES, *zone.NODES, *deltaedit.NODES, *mcdm.NODES]


class PreciseEditExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        # The token view's route is added here, not in on_load, which ComfyUI 0.3.75 never calls; the node list is
        # asked for before the server adds its routes to the web app.
        register_token_route()
        # Likewise here, the one hook both ComfyUIs call at load: a fresh user runs the examples without copying.
        provide_example_inputs()
        return list(NODES)
