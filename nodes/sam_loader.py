"""PreciseEdit_SAMLoader: a Segment Anything checkpoint (ViT-B/L/H or any consistent size) from models/sams."""

import comfy.model_management
import comfy.utils

from ..core.sam_architecture import sam_from_state_dict
from .comfy_node_api import io
from .model_folders import model_path
from .sam_model import SAMS, SamModel
from .socket_types import SamModelType


def load_sam(sam_name: str) -> SamModel:
    """The SAM in ``models/sams/<sam_name>`` on the offload device; ValueError naming the file if it is no SAM."""
    path = model_path(SAMS, sam_name)
    try:
        state = comfy.utils.load_torch_file(str(path), safe_load=True)
    except Exception as error:
        raise ValueError(
            f"sam_name {sam_name!r} could not be read as a tensor checkpoint ({type(error).__name__}: {error}); "
            "expected segment-anything's .pth (e.g. sam_vit_h_4b8939.pth) or a .safetensors of the same state dict"
        ) from error
    try:
        sam, architecture = sam_from_state_dict(state)
    except ValueError as error:
        raise ValueError(f"sam_name {sam_name!r}: {error}") from error
    sam.requires_grad_(False)
    return SamModel(sam.to(comfy.model_management.unet_offload_device()), architecture, sam_name)


class SAMLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        import folder_paths

        return io.Schema(
            node_id="PreciseEdit_SAMLoader",
            display_name="SAM Loader (Segment Anything)",
            category="Precise Edit/ZONE",
            description=(
                "Loads a Segment Anything checkpoint from models/sams: the official sam_vit_b/l/h .pth state dicts "
                "(read with torch.load(weights_only=True), never unpickled) or a .safetensors of the same keys. "
                "The variant and every size are read from the weights. ZONE segments with ViT-H."
            ),
            inputs=[
                io.Combo.Input(
                    "sam_name",
                    options=folder_paths.get_filename_list(SAMS),
                    tooltip="A segment-anything checkpoint in models/sams, e.g. sam_vit_h_4b8939.pth (ZONE's).",
                ),
            ],
            outputs=[
                SamModelType.Output(
                    display_name="SAM_MODEL",
                    tooltip="The SAM, kept on the offload device; segment nodes move it to the GPU for their run.",
                ),
            ],
        )

    @classmethod
    def execute(cls, sam_name: str) -> io.NodeOutput:
        return io.NodeOutput(load_sam(sam_name))
