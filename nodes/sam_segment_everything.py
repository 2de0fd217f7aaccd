"""PreciseEdit_SAMSegmentEverything: every segment SAM's automatic mask generator finds, as one MASK batch."""

import json
import logging

import comfy.model_management
import comfy.utils
import numpy as np
import torch
from segment_anything.modeling import Sam

from ..core.sam_everything import SORT_KEYS, EverythingSettings, segment_everything
from .comfy_node_api import io
from .sam_model import on_compute_device, sam_module
from .socket_types import SamModelType

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
                    "for remove (Action Classifier's sam_image output says which).",
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
            logging.warning("PreciseEdit_SAMSegmentEverything: %s; outputting one blank mask", message)
            info["message"] = message + " (output: one blank mask)"
            masks = torch.zeros((1, height, width))
        return io.NodeOutput(masks, json.dumps(info))
