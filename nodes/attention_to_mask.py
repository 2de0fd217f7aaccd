"""PreciseEdit_AttentionToMask: turn captured cross-attention into one mask per word."""

import torch

from ..core.attention_store import AttentionStore
from ..core.heatmap import heatmap
from .comfy_node_api import io
from .socket_types import AttentionMaps

LATENT_TO_IMAGE = 8


def normalise_maps(maps: torch.Tensor) -> torch.Tensor:
    """Divide each ``[H, W]`` map by its maximum, so every word's strongest point is 1."""
    peak = maps.flatten(-2).amax(-1)[..., None, None]
    return maps / peak.clamp_min(torch.finfo(maps.dtype).tiny)


class AttentionToMask(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_AttentionToMask",
            display_name="Attention To Mask",
            category="Precise Edit/attention",
            description=(
                "Averages the captured cross-attention over the recorded layers, sums each word's tokens, "
                "normalises each map to a maximum of 1 and resizes it to the image size. One mask per word and "
                "image (word-major), plus a heat-map preview."
            ),
            inputs=[
                AttentionMaps.Input("attention", tooltip="From Capture Cross-Attention."),
                io.Latent.Input(
                    "latent",
                    tooltip="The latent sampled with the capturing model: orders this node after sampling "
                    "and gives the image size.",
                ),
                io.Float.Input(
                    "threshold",
                    default=0.0,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="0 keeps the soft normalised map; above 0 the mask is 1 where the map ≥ threshold.",
                ),
            ],
            outputs=[
                io.Mask.Output(display_name="MASK", tooltip="[words × images, H, W] masks at image resolution."),
                io.Image.Output(display_name="HEATMAP", tooltip="The normalised maps as colour heat maps."),
            ],
        )

    @classmethod
    def execute(cls, attention: AttentionStore, latent: dict, threshold: float) -> io.NodeOutput:
        if not attention.layers:
            raise ValueError(
                "no attention was recorded: sample with the MODEL output of Capture Cross-Attention before this node "
                "(connect that sampler's LATENT here)"
            )
        height, width = (side * LATENT_TO_IMAGE for side in latent["samples"].shape[-2:])
        maps = normalise_maps(attention.word_maps((height, width)))
        soft = maps.transpose(0, 1).reshape(-1, height, width).cpu()
        mask = (soft >= threshold).float() if threshold > 0 else soft
        return io.NodeOutput(mask, heatmap(soft))
