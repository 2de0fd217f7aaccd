"""PreciseEdit_FFTEdgeSmoother: blend the edited object into the original with ZONE's FFT edge smoother."""

import torch

from ..core.fft_edge_smoother import REFERENCE_SIZE, SmootherSettings, smooth_and_composite
from ..core.mask_stack import mask_stack
from .comfy_node_api import io

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
        settings = SmootherSettings(dilation_radius, low_pass_radius, threshold, closing_radius, alpha)
        if scale_with_resolution:
            settings = settings.scaled(*original.shape[1:3])
        result = smooth_and_composite(original, edited, mask_stack(fine_mask, "fine_mask"), settings)
        return io.NodeOutput(result.final_mask.float().cpu(), result.composite)
