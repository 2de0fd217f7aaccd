"""ZONE's compositing: the FFT edge smoother that blends the edit into the original, and the padding around a model's
size grid.

PreciseEdit_FFTEdgeSmoother: blend the edited object into the original with ZONE's FFT edge smoother.

PreciseEdit_ResizeAndPad: ZONE's pre-processing, the longest side to N and black padding to a multiple of m.

PreciseEdit_UnPad: crop an image (and mask) padded by Resize And Pad back to the photo, optionally at its size.
"""

import comfy.utils
import torch

from ...core.masks.mask_stack import mask_stack
from ...core.zone.fft_edge_smoother import REFERENCE_SIZE, SmootherSettings, smooth_and_composite
from ...core.zone.image_padding import PLACEMENTS, PaddedLayout, crop_to_layout, pad_to_layout, padded_layout
from ..common.comfy_node_api import io
from ..common.socket_types import PaddedLayoutType

DEFAULTS = SmootherSettings()


class FFTEdgeSmoother(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_FFTEdgeSmoother",
            display_name="FFT Edge Smoother",
            category="Precise Edit/ZONE",
            description=(
                "Composites the edited object onto the original image with ZONE's FFT edge smoother: the refined "
                "mask is dilated, the low frequencies of the two images' difference inside it are kept, thresholded, "
                "closed and hole-filled into the final mask, and the band where it differs from the refined mask is "
                "blended with alpha. Every pixel outside the final mask is the original's, bit for bit."
            ),
            inputs=[
                io.Image.Input("original", tooltip="The image before editing (I_G)."),
                io.Image.Input("edited", tooltip="The editor's output (I_sty), same size as the original."),
                io.Mask.Input(
                    "fine_mask",
                    tooltip="M_f, the refined edit mask (Region-IoU Select), same size as the images.",
                ),
                io.Int.Input(
                    "dilation_radius",
                    default=DEFAULTS.dilation_radius,
                    min=0,
                    max=256,
                    tooltip="M_f is dilated by a (2r+1)² square (4: the released 3×3 kernel applied 4 times).",
                ),
                io.Float.Input(
                    "low_pass_radius",
                    default=DEFAULTS.low_pass_radius,
                    min=0.0,
                    max=8192.0,
                    step=1.0,
                    tooltip="D₀, the ideal low-pass radius in frequency units (200 in the paper).",
                ),
                io.Float.Input(
                    "threshold",
                    default=DEFAULTS.threshold,
                    min=0.0,
                    max=255.0,
                    step=0.5,
                    tooltip="Binarisation threshold of the low-frequency difference, on the 0–255 gray scale.",
                ),
                io.Int.Input(
                    "closing_radius",
                    default=DEFAULTS.closing_radius,
                    min=0,
                    max=256,
                    tooltip="The closing uses a (2r+1)² square (10: the released 21 × 21).",
                ),
                io.Float.Input(
                    "alpha",
                    default=DEFAULTS.alpha,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Weight of the edited image in the blended band (0.6 in the released code).",
                ),
                io.Boolean.Input(
                    "scale_with_resolution",
                    default=True,
                    tooltip=f"The three sizes above are for a {REFERENCE_SIZE}-px longest side and are scaled by "
                    f"max(H, W) / {REFERENCE_SIZE}; off uses them as given.",
                ),
            ],
            outputs=[
                io.Mask.Output(
                    display_name="MASK", tooltip="M_f*, the final mask: every pixel the composite may change."
                ),
                io.Image.Output(display_name="IMAGE", tooltip="The composite: original outside M_f*, edited inside."),
            ],
        )

    @classmethod
    def execute(
        cls,
        original: torch.Tensor,
        edited: torch.Tensor,
        fine_mask: torch.Tensor,
        dilation_radius: int,
        low_pass_radius: float,
        threshold: float,
        closing_radius: int,
        alpha: float,
        scale_with_resolution: bool,
    ) -> io.NodeOutput:
        settings = SmootherSettings(
            dilation_radius=dilation_radius,
            low_pass_radius=low_pass_radius,
            threshold=threshold,
            closing_radius=closing_radius,
            alpha=alpha,
        )
        if scale_with_resolution:
            settings = settings.scaled(*original.shape[1:3])
        result = smooth_and_composite(original, edited, mask_stack(fine_mask, "fine_mask"), settings)
        return io.NodeOutput(result.final_mask.float().cpu(), result.composite)


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
        layout = padded_layout(
            image.shape[1],
            image.shape[2],
            longest_side=longest_side,
            multiple=multiple,
            placement=placement,
            enlarge=enlarge,
        )
        scaled = resized(image, layout.height, layout.width, upscale_method)
        return io.NodeOutput(pad_to_layout(scaled.movedim(-1, 1), layout).movedim(1, -1), layout)


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


NODES = [FFTEdgeSmoother, ResizeAndPad, UnPad]
