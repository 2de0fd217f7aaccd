"""PreciseEdit_ResizeAndPad: ZONE's pre-processing, the longest side to N and black padding to a multiple of m."""

import comfy.utils
import torch

from ..core.image_padding import PLACEMENTS, pad_to_layout, padded_layout
from .comfy_node_api import io
from .socket_types import PaddedLayoutType

UPSCALE_METHODS = ["lanczos", "bicubic", "bilinear", "area", "nearest-exact"]


def resized(images: torch.Tensor, height: int, width: int, method: str) -> torch.Tensor:
    """IMAGE [B, H, W, C] at ``height`` × ``width`` by ComfyUI's resampler, untouched when already that size."""
    if tuple(images.shape[1:3]) == (height, width):
        return images
    return comfy.utils.common_upscale(images.movedim(-1, 1), width, height, method, "disabled").movedim(1, -1)


class ResizeAndPad(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_ResizeAndPad",
            display_name="Resize And Pad (ZONE)",
            category="Precise Edit/ZONE",
            description=(
                "Fits an image of any shape to the model without cropping, as ZONE's released code does: the "
                "longest side is scaled to longest_side keeping the aspect ratio, then black padding brings both "
                "sides to a multiple of `multiple`. Un-Pad crops the result back with the PADDING output."
            ),
            inputs=[
                io.Image.Input("image", tooltip="The photo to edit, any aspect ratio."),
                io.Int.Input(
                    "longest_side",
                    default=512,
                    min=8,
                    max=16384,
                    step=8,
                    tooltip="N: the longest side after scaling (ZONE: 512). The other side keeps the aspect ratio.",
                ),
                io.Int.Input(
                    "multiple",
                    default=32,
                    min=1,
                    max=1024,
                    tooltip="Both padded sides become multiples of this (ZONE: 32, so the 16×16 attention layers "
                    "of SD1.5 tile the image exactly).",
                ),
                io.Combo.Input(
                    "placement",
                    options=list(PLACEMENTS),
                    default="center",
                    tooltip="center: half the padding on each side, as ZONE's code. right_bottom: all of it after "
                    "the image.",
                ),
                io.Boolean.Input(
                    "enlarge",
                    default=False,
                    tooltip="Off: only images larger than longest_side are scaled (ZONE). On: smaller ones are "
                    "enlarged to it too.",
                ),
                io.Combo.Input(
                    "upscale_method",
                    options=UPSCALE_METHODS,
                    default="lanczos",
                    tooltip="Resampling used when the image is scaled (ZONE's code uses PIL's default, bicubic).",
                ),
            ],
            outputs=[
                io.Image.Output(display_name="IMAGE", tooltip="The scaled image on its padded canvas."),
                PaddedLayoutType.Output(
                    display_name="PADDING",
                    tooltip="Where the image sits in the canvas and its original size: connect to Un-Pad.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls, image: torch.Tensor, longest_side: int, multiple: int, placement: str, enlarge: bool, upscale_method: str
    ) -> io.NodeOutput:
        if image.dim() != 4:
            raise ValueError(f"image must be an IMAGE [B, H, W, C]; got shape {tuple(image.shape)}")
        if upscale_method not in UPSCALE_METHODS:
            raise ValueError(f"upscale_method must be one of {UPSCALE_METHODS}, got {upscale_method!r}")
        layout = padded_layout(image.shape[1], image.shape[2], longest_side, multiple, placement, enlarge)
        scaled = resized(image, layout.height, layout.width, upscale_method)
        return io.NodeOutput(pad_to_layout(scaled.movedim(-1, 1), layout).movedim(1, -1), layout)
