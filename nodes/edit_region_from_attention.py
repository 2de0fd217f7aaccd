"""PreciseEdit_EditRegionFromAttention: ZONE's rough edit mask M_b from the recorded start/end-token attention."""

import torch

from ..core.attention_store import AttentionStore
from ..core.edit_region import PAPER_THRESHOLD, RELEASED_THRESHOLD, attention_difference, edit_region
from .comfy_node_api import io
from .instruction_locator import END_TOKEN, START_TOKEN
from .socket_types import AttentionMaps

LATENT_TO_IMAGE = 8
RULES: dict[str, int | None] = {
    "released code: D ≤ 54": RELEASED_THRESHOLD,
    "paper: D < 128": PAPER_THRESHOLD,
    "custom: D < threshold": None,
}
DEFAULT_RULE = "released code: D ≤ 54"


def start_end_maps(store: AttentionStore) -> tuple[torch.Tensor, torch.Tensor]:
    """The start- and end-token maps ``[B, h, w]`` averaged over the recorded layers, on the finest recorded grid."""
    if not store.layers or START_TOKEN not in store.words or END_TOKEN not in store.words:
        raise ValueError(
            "attention: nothing was recorded. Sample with the MODEL output of Instruction Locator (through "
            "Fused Instruct Guider or DualCFGGuider) and connect that sampler's LATENT output to this node"
        )
    grid = max((entry.grid for entry in store.layers.values()), key=lambda g: g[0] * g[1])
    maps = store.token_maps([store.words[START_TOKEN], store.words[END_TOKEN]], grid)
    return maps[:, 0], maps[:, 1]


class EditRegionFromAttention(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_EditRegionFromAttention",
            display_name="Edit Region From Attention (ZONE)",
            category="Precise Edit/ZONE",
            description=(
                "ZONE's rough edit mask M_b: the start-token attention map minus the instruction's end-token map, "
                "each scaled to 0–255 by its maximum, resized to the image and thresholded (edit region where the "
                "difference D is small). Feed M_b to Region-IoU Select with the segments of the edited image."
            ),
            inputs=[
                AttentionMaps.Input("attention", tooltip="The ATTENTION output of Instruction Locator."),
                io.Latent.Input(
                    "latent",
                    tooltip="The latent sampled with the locator's model: orders this node after sampling and gives "
                    "the image size (8 pixels per latent pixel).",
                ),
                io.Combo.Input(
                    "rule",
                    options=list(RULES),
                    default=DEFAULT_RULE,
                    tooltip="Edit region {D ≤ 54} as the released code computes it, the paper's {D < 128}, or "
                    "{D < threshold}.",
                ),
                io.Int.Input(
                    "threshold",
                    default=PAPER_THRESHOLD,
                    min=1,
                    max=256,
                    tooltip="T of the custom rule on the 0–255 scale of D (unused by the other two rules).",
                ),
            ],
            outputs=[
                io.Mask.Output(display_name="MASK", tooltip="M_b [B, H, W]: 1 in the rough edit region."),
                io.Image.Output(display_name="DIFFERENCE", tooltip="D / 255 as a gray image, to pick a threshold."),
            ],
        )

    @classmethod
    def execute(cls, attention: AttentionStore, latent: dict, rule: str, threshold: int) -> io.NodeOutput:
        if rule not in RULES:
            raise ValueError(f"unknown rule {rule!r}; expected one of {list(RULES)}")
        bos, eos = start_end_maps(attention)
        samples = latent["samples"]
        if samples.shape[0] != bos.shape[0]:
            raise ValueError(
                f"latent has {samples.shape[0]} images but the attention was recorded for {bos.shape[0]}: connect "
                "the LATENT of the sampler that used the locator's model"
            )
        size = (samples.shape[-2] * LATENT_TO_IMAGE, samples.shape[-1] * LATENT_TO_IMAGE)
        difference = attention_difference(bos, eos, size)
        limit = RULES[rule] if RULES[rule] is not None else threshold
        mask = edit_region(difference, limit)
        empty = [i for i in range(mask.shape[0]) if not mask[i].any()]
        if empty:
            low = difference[empty[0]].min().item()
            raise ValueError(
                f"the edit region M_b of image {empty[0]} is empty: no pixel has D < {limit} (D ranges from "
                f"{low:.0f} to {difference[empty[0]].max().item():.0f}). Use the custom rule with a threshold above "
                f"{low:.0f}, or check that the locator's model was the one sampled"
            )
        gray = (difference / 255.0).cpu()
        return io.NodeOutput(mask.float().cpu(), gray[..., None].expand(*gray.shape, 3).contiguous())
