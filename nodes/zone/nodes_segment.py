"""ZONE's segments: SAM's segment-everything, Region-IoU selection of the segment that matches M_b, and a mask from an
image.

PreciseEdit_SAMLoader: a Segment Anything checkpoint (ViT-B/L/H or any consistent size) from models/sams.

PreciseEdit_SAMSegmentEverything: every segment SAM's automatic mask generator finds, as one MASK batch.

PreciseEdit_RegionIoUSelect: refine a rough edit mask into the segment that matches it best (ZONE's Region-IoU).

PreciseEdit_ImageToSegment: the image SAM segments in ZONE, the original for a removal and the edit otherwise.
"""

import json
import logging

import comfy.model_management
import comfy.utils
import numpy as np
import torch
from segment_anything.modeling import Sam

from ...core.masks.mask_stack import mask_stack
from ...core.zone.region_iou import NO_OVERLAP_POLICIES, SELECTION_MODES, select_region
from ...core.zone.sam_architecture import sam_from_state_dict
from ...core.zone.sam_everything import SORT_KEYS, EverythingSettings, segment_everything
from ..common.comfy_node_api import io
from ..common.listed_model_file import listed_model_file
from ..common.model_folders import model_path
from ..common.node_text import show_on_node
from ..common.socket_types import SamModelType
from .sam_model import SAMS, SamModel, on_compute_device, sam_module
from .segs_masks import segs_to_masks


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
    def validate_inputs(cls, sam_name: str) -> bool | str:
        import folder_paths

        return listed_model_file(sam_name, folder_paths.get_filename_list(SAMS), SAMS)

    @classmethod
    def execute(cls, sam_name: str) -> io.NodeOutput:
        return io.NodeOutput(load_sam(sam_name))


IF_NONE_PASS = ("blank_mask", "error")


DEFAULTS = EverythingSettings()


def image_as_uint8(image: torch.Tensor) -> np.ndarray:
    """The single ComfyUI IMAGE [1, H, W, 3] in [0, 1] as uint8 RGB [H, W, 3] (truncated ×255, as SaveImage writes)."""
    if image.dim() != 4 or image.shape[-1] != 3:
        raise ValueError(f"image must be a ComfyUI IMAGE [B, H, W, 3]; got shape {tuple(image.shape)}")
    if image.shape[0] != 1:
        raise ValueError(
            f"image is a batch of {image.shape[0]}: SAM segments one image at a time (ZONE segments the edited "
            "image); pick one with ImageFromBatch"
        )
    if torch.isnan(image).any():
        raise ValueError("image contains NaN values")
    return (image[0].float().clamp(0.0, 1.0) * 255.0).to(torch.uint8).cpu().numpy()


def _working_bytes(sam: Sam, height: int, width: int, points_per_batch: int) -> int:
    """A generous estimate of the GPU memory one run needs besides the weights: the encoder's global attention
    matrices and one batch of full-size mask logits."""
    encoder = sam.image_encoder
    tokens = (encoder.img_size // encoder.patch_embed.proj.kernel_size[0]) ** 2
    heads = encoder.blocks[0].attn.num_heads
    return 8 * tokens * tokens * heads + 8 * 3 * points_per_batch * height * width


class SAMSegmentEverything(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_SAMSegmentEverything",
            display_name="SAM Segment Everything",
            category="Precise Edit/ZONE",
            description=(
                "Runs Segment Anything's automatic mask generator (a grid of point prompts, predicted-IoU and "
                "stability filters, box NMS) on one image and outputs every segment as a MASK batch [N, H, W], "
                "largest first by default: the candidate segments ZONE's Region-IoU Select chooses from. The "
                "defaults are the released generator's, which ZONE uses unchanged."
            ),
            inputs=[
                SamModelType.Input("sam_model", tooltip="A SAM from SAM Loader (Impact Pack's SAM_MODEL works too)."),
                io.Image.Input(
                    "image",
                    tooltip="One image (batch of 1). ZONE segments the edited image for add/change and the original "
                    "for remove: connect Image To Segment, driven by the Action Classifier's SEGMENT_ORIGINAL.",
                ),
                io.Int.Input(
                    "points_per_side",
                    default=DEFAULTS.points_per_side,
                    min=1,
                    max=256,
                    tooltip="The prompt grid is points_per_side² points over the image (32: released default).",
                ),
                io.Int.Input(
                    "points_per_batch",
                    default=DEFAULTS.points_per_batch,
                    min=1,
                    max=4096,
                    tooltip="Points the mask decoder runs at once: more is faster and needs more memory (64).",
                ),
                io.Float.Input(
                    "pred_iou_thresh",
                    default=DEFAULTS.pred_iou_thresh,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Keep masks whose own predicted IoU reaches this (0.88).",
                ),
                io.Float.Input(
                    "stability_score_thresh",
                    default=DEFAULTS.stability_score_thresh,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Keep masks whose stability score (IoU of the mask at logit ±offset) reaches this (0.95).",
                ),
                io.Float.Input(
                    "stability_score_offset",
                    default=DEFAULTS.stability_score_offset,
                    min=0.0,
                    max=100.0,
                    step=0.1,
                    tooltip="The logit offset of the stability score (1.0).",
                ),
                io.Float.Input(
                    "box_nms_thresh",
                    default=DEFAULTS.box_nms_thresh,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Box IoU above which the lower-scoring of two masks is dropped as a duplicate (0.7).",
                ),
                io.Int.Input(
                    "crop_n_layers",
                    default=DEFAULTS.crop_n_layers,
                    min=0,
                    max=4,
                    tooltip="Also segment 4^k overlapping crops for k = 1..n (0: whole image only, ZONE).",
                ),
                io.Int.Input(
                    "min_mask_region_area",
                    default=DEFAULTS.min_mask_region_area,
                    min=0,
                    max=1 << 24,
                    tooltip="Fill holes and remove islands smaller than this many pixels in each mask (0: off).",
                ),
                io.Combo.Input(
                    "sort_by",
                    options=list(SORT_KEYS),
                    default="area",
                    tooltip="Order of the output masks, largest value first: pixel area, predicted IoU or "
                    "stability score (ties keep the generator's order).",
                ),
                io.Combo.Input(
                    "if_none_pass",
                    options=list(IF_NONE_PASS),
                    default="blank_mask",
                    tooltip="When no mask passes the thresholds: output one all-zero mask (Region-IoU Select then "
                    "applies its on_no_overlap policy) or stop with an error.",
                ),
            ],
            outputs=[
                io.Mask.Output(display_name="MASKS", tooltip="The segments, [N, H, W] at the image's size, 0 or 1."),
                io.String.Output(
                    display_name="INFO",
                    tooltip="JSON: count, sort order, and each mask's area, predicted IoU and stability score.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        sam_model: object,
        image: torch.Tensor,
        points_per_side: int,
        points_per_batch: int,
        pred_iou_thresh: float,
        stability_score_thresh: float,
        stability_score_offset: float,
        box_nms_thresh: float,
        crop_n_layers: int,
        min_mask_region_area: int,
        sort_by: str,
        if_none_pass: str,
    ) -> io.NodeOutput:
        if if_none_pass not in IF_NONE_PASS:
            raise ValueError(f"if_none_pass must be one of {IF_NONE_PASS}, got {if_none_pass!r}")
        sam = sam_module(sam_model, "sam_model")
        pixels = image_as_uint8(image)
        settings = EverythingSettings(
            points_per_side=points_per_side,
            points_per_batch=points_per_batch,
            pred_iou_thresh=pred_iou_thresh,
            stability_score_thresh=stability_score_thresh,
            stability_score_offset=stability_score_offset,
            box_nms_thresh=box_nms_thresh,
            crop_n_layers=crop_n_layers,
            min_mask_region_area=min_mask_region_area,
        )
        height, width = pixels.shape[:2]
        progress = comfy.utils.ProgressBar(1)

        def on_batch(done: int, total: int) -> None:
            comfy.model_management.throw_exception_if_processing_interrupted()
            progress.update_absolute(done, total)

        with on_compute_device(sam, _working_bytes(sam, height, width, points_per_batch)):
            segments = segment_everything(sam, pixels, settings, sort_by=sort_by, on_batch=on_batch)
        info = {
            "count": int(segments.masks.shape[0]),
            "sort_by": sort_by,
            "area": segments.area,
            "predicted_iou": [round(value, 6) for value in segments.predicted_iou],
            "stability_score": [round(value, 6) for value in segments.stability_score],
        }
        masks = segments.masks.float()
        if masks.shape[0] == 0:
            message = (
                f"SAM found no mask with predicted IoU ≥ {pred_iou_thresh} and stability ≥ {stability_score_thresh} "
                f"in the {width}×{height} image: lower pred_iou_thresh / stability_score_thresh or raise "
                "points_per_side"
            )
            if if_none_pass == "error":
                raise ValueError(message)
            show_on_node(f"SAM Segment Everything: {message}; outputting one blank mask", logging.WARNING)
            info["message"] = message + " (output: one blank mask)"
            masks = torch.zeros((1, height, width))
        return io.NodeOutput(masks, json.dumps(info))


def candidate_segments(segments: list | None, segs: list | None) -> torch.Tensor:
    """bool [N, H, W]: the MASK inputs in order, then the SEGS inputs pasted into full-size canvases."""
    stacks = []
    if segments:
        stacks.append(mask_stack(segments, "segments"))
    if segs:
        stacks.append(mask_stack([segs_to_masks(item, f"segs[{i}]") for i, item in enumerate(segs)], "segs"))
    if not stacks:
        raise ValueError("connect segments (a MASK batch or list, e.g. SAM's masks) or segs (Impact Pack SEGS)")
    if len(stacks) == 2 and stacks[0].shape[-2:] != stacks[1].shape[-2:]:
        raise ValueError(
            f"segments are {tuple(stacks[0].shape[-2:])} (H, W) but segs are {tuple(stacks[1].shape[-2:])}"
        )
    return torch.cat(stacks)


class RegionIoUSelect(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_RegionIoUSelect",
            display_name="Region-IoU Select",
            category="Precise Edit/ZONE",
            description=(
                "Picks, among candidate segments (SAM's masks, SEGS), the one that best matches a rough edit mask "
                "M_b by Region-IoU = |M_b ∧ S| / |M_b ∨ S| (ZONE), or the union of the top k or of all above an "
                "IoU floor. Regions smaller than min_region_area are removed before and after, as the released "
                "code does. Outputs the refined mask M_f and every segment's IoU as JSON."
            ),
            is_input_list=True,
            inputs=[
                io.Mask.Input(
                    "rough_mask",
                    tooltip="M_b, the rough edit region (Difference Locator, attention, any mask). "
                    "Several masks give one M_f each.",
                ),
                io.Mask.Input(
                    "segments",
                    optional=True,
                    tooltip="Candidate segments: a MASK batch [N, H, W] or [N, 1, H, W], one [H, W] mask, or a list "
                    "of masks; bool, uint8 (≠ 0 inside) or float (> 0.5 inside).",
                ),
                io.SEGS.Input(
                    "segs",
                    optional=True,
                    tooltip="Impact Pack SEGS: each segment's cropped mask is pasted at its crop region and added "
                    "after the segments input.",
                ),
                io.Combo.Input(
                    "mode",
                    options=list(SELECTION_MODES),
                    default="argmax",
                    tooltip="argmax: the single best segment (ZONE). top_k: union of the k best. iou_floor: union of "
                    "all segments whose IoU reaches the floor.",
                ),
                io.Int.Input("top_k", default=3, min=1, max=4096, tooltip="How many best segments top_k unites."),
                io.Float.Input(
                    "iou_floor",
                    default=0.5,
                    min=0.01,
                    max=1.0,
                    step=0.01,
                    tooltip="The IoU a segment needs in iou_floor mode.",
                ),
                io.Int.Input(
                    "min_region_area",
                    default=64,
                    min=0,
                    max=1 << 24,
                    tooltip="Connected regions with fewer pixels are removed from M_b and M_f (64: released code).",
                ),
                io.Combo.Input(
                    "on_no_overlap",
                    options=list(NO_OVERLAP_POLICIES),
                    default="error",
                    tooltip="When no segment is selected (no overlap, or none reaches the floor): stop with an "
                    "error, or output the rough mask itself.",
                ),
            ],
            outputs=[
                io.Mask.Output(display_name="MASK", tooltip="M_f, the refined edit mask, one per rough mask."),
                io.String.Output(
                    display_name="SCORES",
                    tooltip="JSON: every segment's IoU per rough mask, the selected indices, and whether the "
                    "rough mask was used instead.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        rough_mask: list,
        mode: list[str],
        top_k: list[int],
        iou_floor: list[float],
        min_region_area: list[int],
        on_no_overlap: list[str],
        segments: list | None = None,
        segs: list | None = None,
    ) -> io.NodeOutput:
        rough = mask_stack(rough_mask, "rough_mask")
        selection = select_region(
            rough,
            candidate_segments(segments, segs),
            mode=mode[0],
            top_k=top_k[0],
            iou_floor=iou_floor[0],
            min_region_area=min_region_area[0],
            on_no_overlap=on_no_overlap[0],
        )
        scores = {
            "mode": mode[0],
            "selected": selection.selected,
            "used_rough_mask": selection.used_rough_mask,
            "iou": [[round(value, 6) for value in row] for row in selection.iou.tolist()],
        }
        return io.NodeOutput(selection.mask.float().cpu(), json.dumps(scores))


class ImageToSegment(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_ImageToSegment",
            display_name="Image To Segment (ZONE)",
            category="Precise Edit/ZONE",
            description=(
                "Passes on the image SAM should segment, as ZONE does: the original when the instruction removes "
                "something (the object is gone from the edited image), the edited image for a change or an "
                "addition. Connect the Action Classifier's SEGMENT_ORIGINAL to segment_original."
            ),
            inputs=[
                io.Image.Input("original", tooltip="The image before the edit."),
                io.Image.Input("edited", tooltip="The editor's output."),
                io.Boolean.Input(
                    "segment_original",
                    default=False,
                    tooltip="True: pass the original on (remove). Connect the Action Classifier's SEGMENT_ORIGINAL.",
                ),
            ],
            outputs=[io.Image.Output(display_name="IMAGE", tooltip="The image for SAM Segment Everything.")],
        )

    @classmethod
    def execute(cls, original: torch.Tensor, edited: torch.Tensor, segment_original: bool) -> io.NodeOutput:
        return io.NodeOutput(original if segment_original else edited)


NODES = [SAMLoader, SAMSegmentEverything, RegionIoUSelect, ImageToSegment]
