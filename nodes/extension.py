"""The node list ComfyUI registers for Precise Edit."""

from comfy_api.latest import ComfyExtension, io

from .attention_mask_injector import AttentionMaskInjector
from .attention_to_mask import AttentionToMask
from .capture_cross_attention import CaptureCrossAttention
from .difference_locator import DifferenceLocator
from .fft_edge_smoother import FFTEdgeSmoother
from .region_iou_select import RegionIoUSelect


class PreciseEditExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [
            AttentionMaskInjector,
            CaptureCrossAttention,
            AttentionToMask,
            DifferenceLocator,
            RegionIoUSelect,
            FFTEdgeSmoother,
        ]
