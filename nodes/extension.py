"""The node list ComfyUI registers for Precise Edit."""

from comfy_api.latest import ComfyExtension, io

from .attention_mask_injector import AttentionMaskInjector
from .attention_to_mask import AttentionToMask
from .capture_cross_attention import CaptureCrossAttention


class PreciseEditExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [AttentionMaskInjector, CaptureCrossAttention, AttentionToMask]
