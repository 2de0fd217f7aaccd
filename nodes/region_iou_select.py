"""PreciseEdit_RegionIoUSelect: refine a rough edit mask into the segment that matches it best (ZONE's Region-IoU)."""

import json

import torch

from ..core.mask_stack import mask_stack
from ..core.region_iou import NO_OVERLAP_POLICIES, SELECTION_MODES, select_region
from .comfy_node_api import io
from .segs_masks import segs_to_masks


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
