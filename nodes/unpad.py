"""PreciseEdit_UnPad: crop an image (and mask) padded by Resize And Pad back to the photo, optionally at its size."""

import torch

from ..core.image_padding import PaddedLayout, crop_to_layout
from .comfy_node_api import io
from .resize_and_pad import UPSCALE_METHODS, resized
from .socket_types import PaddedLayoutType


def unpadded(images: torch.Tensor, layout: PaddedLayout, name: str) -> torch.Tensor:
    """``images`` [B, H, W, ...] with the padding cut off, or an error naming the input whose size is wrong."""
    try:
        return crop_to_layout(images.movedim(-1, 1) if images.dim() == 4 else images, layout)
    except ValueError as error:
        raise ValueError(
            f"{name} is {tuple(images.shape[1:3])} (H, W) but PADDING describes a "
            f"{layout.padded_height}×{layout.padded_width} canvas: connect the {name} made from Resize And Pad's "
            "IMAGE"
        ) from error


class UnPad(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_UnPad",
            display_name="Un-Pad (ZONE)",
            category="Precise Edit/ZONE",
            description=(
                "Undoes Resize And Pad after the edit: crops the padding off an image and its mask, giving back "
                "the photo's aspect ratio, and optionally scales them to the photo's original size. Pad then "
                "un-pad returns the scaled photo exactly."
            ),
            inputs=[
                PaddedLayoutType.Input("padding", tooltip="Resize And Pad's PADDING output."),
                io.Image.Input("image", tooltip="An image on the padded canvas (the composite, the edited image)."),
                io.Mask.Input(
                    "mask",
                    optional=True,
                    tooltip="A mask on the padded canvas (the final edit mask). Without it MASK is all zeros.",
                ),
                io.Boolean.Input(
                    "resize_to_original",
                    default=False,
                    tooltip="Off: the model's scale (pixels outside the edit stay exactly the scaled photo's). On: "
                    "scaled back to the photo's original size (resampled, so no longer bit-exact).",
                ),
                io.Combo.Input(
                    "upscale_method",
                    options=UPSCALE_METHODS,
                    default="lanczos",
                    tooltip="Resampling of the image when resize_to_original is on (masks use bilinear).",
                ),
            ],
            outputs=[
                io.Image.Output(display_name="IMAGE", tooltip="The image without the padding."),
                io.Mask.Output(display_name="MASK", tooltip="The mask without the padding (zeros when none given)."),
            ],
        )

    @classmethod
    def execute(
        cls,
        padding: PaddedLayout,
        image: torch.Tensor,
        resize_to_original: bool,
        upscale_method: str,
        mask: torch.Tensor | None = None,
    ) -> io.NodeOutput:
        if not isinstance(padding, PaddedLayout):
            raise ValueError(f"padding must be Resize And Pad's PADDING output, got {type(padding).__name__}")
        if image.dim() != 4:
            raise ValueError(f"image must be an IMAGE [B, H, W, C]; got shape {tuple(image.shape)}")
        if upscale_method not in UPSCALE_METHODS:
            raise ValueError(f"upscale_method must be one of {UPSCALE_METHODS}, got {upscale_method!r}")
        cropped = unpadded(image, padding, "image").movedim(1, -1)
        if mask is None:
            cropped_mask = torch.zeros(cropped.shape[:3], dtype=cropped.dtype, device=cropped.device)
        else:
            cropped_mask = unpadded(mask if mask.dim() == 3 else mask[None], padding, "mask")
        if resize_to_original:
            height, width = padding.original_height, padding.original_width
            cropped = resized(cropped, height, width, upscale_method)
            cropped_mask = resized(cropped_mask[..., None], height, width, "bilinear")[..., 0].clamp(0.0, 1.0)
        return io.NodeOutput(cropped, cropped_mask)
