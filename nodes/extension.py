"""The node list ComfyUI registers for Precise Edit."""

from comfy_api.latest import ComfyExtension, io

from .apply_delta_edit import ApplyDeltaEdit
from .attention_mask_injector import AttentionMaskInjector
from .attention_to_mask import AttentionToMask
from .capture_cross_attention import CaptureCrossAttention
from .clip_delta_direction import CLIPDeltaDirection
from .delta_mapper_loader import DeltaMapperLoader
from .delta_mapper_trainer import DeltaMapperTrainer
from .difference_locator import DifferenceLocator
from .fft_edge_smoother import FFTEdgeSmoother
from .inversion_reconstruct import InversionReconstruct
from .joint_clip_loader import JointCLIPLoader
from .null_text_inversion import NullTextInversion
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
            JointCLIPLoader,
            CLIPDeltaDirection,
            DeltaMapperTrainer,
            DeltaMapperLoader,
            ApplyDeltaEdit,
            NullTextInversion,
            InversionReconstruct,
        ]
