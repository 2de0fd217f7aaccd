"""The node list ComfyUI registers for Precise Edit."""

from .action_classifier import ActionClassifier
from .action_classifier_trainer import ActionClassifierTrainer
from .apply_delta_edit import ApplyDeltaEdit
from .attention_mask_injector import AttentionMaskInjector
from .attention_to_mask import AttentionToMask
from .capture_cross_attention import CaptureCrossAttention
from .clip_delta_direction import CLIPDeltaDirection
from .comfy_node_api import ComfyExtension, io
from .delta_mapper_loader import DeltaMapperLoader
from .delta_mapper_trainer import DeltaMapperTrainer
from .difference_locator import DifferenceLocator
from .edit_region_from_attention import EditRegionFromAttention
from .fft_edge_smoother import FFTEdgeSmoother
from .fused_instruct_guider import FusedInstructGuiderNode
from .identity_trainer import IdentityTokenTrainer
from .image_to_segment import ImageToSegment
from .instruction_locator import InstructionLocator
from .inversion_reconstruct import InversionReconstruct
from .joint_clip_loader import JointCLIPLoader
from .mcdm_edit_mask import MCDMEditMask
from .mcdm_guider import MCDMGuiderNode
from .mcdm_loader import MCDMLoader
from .mcdm_trainer import MCDMTrainer
from .null_text_inversion import NullTextInversion
from .orthogonality_loss import OrthogonalityLoss
from .paired_canvas_guider import PairedCanvasGuider
from .paired_data_generator import PairedDataGenerator
from .prompt_to_prompt import PromptToPromptEdit
from .prompt_to_prompt_identity_prompt import IdentityPrompt
from .region_iou_select import RegionIoUSelect
from .resize_and_pad import ResizeAndPad
from .sam_loader import SAMLoader
from .sam_segment_everything import SAMSegmentEverything
from .spatial_control import SpatialControlNode
from .unpad import UnPad


class PreciseEditExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [
            AttentionMaskInjector,
            CaptureCrossAttention,
            AttentionToMask,
            DifferenceLocator,
            SAMLoader,
            SAMSegmentEverything,
            ActionClassifier,
            ActionClassifierTrainer,
            RegionIoUSelect,
            FFTEdgeSmoother,
            InstructionLocator,
            FusedInstructGuiderNode,
            EditRegionFromAttention,
            JointCLIPLoader,
            CLIPDeltaDirection,
            DeltaMapperTrainer,
            DeltaMapperLoader,
            ApplyDeltaEdit,
            NullTextInversion,
            InversionReconstruct,
            IdentityTokenTrainer,
            OrthogonalityLoss,
            SpatialControlNode,
            PromptToPromptEdit,
            IdentityPrompt,
            MCDMLoader,
            MCDMEditMask,
            MCDMGuiderNode,
            PairedCanvasGuider,
            PairedDataGenerator,
            MCDMTrainer,
            ResizeAndPad,
            UnPad,
            ImageToSegment,
        ]
