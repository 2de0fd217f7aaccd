"""PreciseEdit_DifferenceLocator: the rough edit mask from where an editor changed the image."""

import torch

from ..core.difference_locator import METRICS, difference_mask
from .comfy_node_api import io

THRESHOLD_MODES = ["relative", "absolute"]


def image_pair(original: torch.Tensor, edited: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two IMAGE inputs as [B, C, H, W], checked to be the same size."""
    if original.dim() != 4 or edited.dim() != 4:
        raise ValueError(
            f"original and edited must be IMAGE [B, H, W, C]; got {tuple(original.shape)} and {tuple(edited.shape)}"
        )
    if original.shape[1:] != edited.shape[1:]:
        raise ValueError(
            f"original is {tuple(original.shape[1:])} (H, W, C) but edited is {tuple(edited.shape[1:])}: "
            "resize or crop them to the same size"
        )
    return original.movedim(-1, 1), edited.movedim(-1, 1)


class DifferenceLocator(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_DifferenceLocator",
            display_name="Difference Locator",
            category="Precise Edit/ZONE",
            description=(
                "Finds the rough edit region M_b of any editor (Flux Kontext, Qwen-Image-Edit, InstructPix2Pix, "
                "inpainting) from where its output differs from the original: per-pixel channel difference, "
                "Gaussian blur, threshold. Feed it to Region-IoU Select and the FFT Edge Smoother to keep every "
                "other pixel of the original."
            ),
            inputs=[
                io.Image.Input("original", tooltip="The image before editing."),
                io.Image.Input("edited", tooltip="The editor's output, same size as the original."),
                io.Combo.Input(
                    "metric",
                    options=list(METRICS),
                    default="max",
                    tooltip="Per-pixel difference: max over channels (catches hue changes), mean, or rms.",
                ),
                io.Float.Input(
                    "blur_sigma",
                    default=2.0,
                    min=0.0,
                    max=64.0,
                    step=0.1,
                    tooltip="Gaussian blur of the difference in pixels; merges scattered VAE noise into a low floor.",
                ),
                io.Float.Input(
                    "threshold",
                    default=0.25,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Pixels whose blurred difference exceeds this are edited (see threshold_mode).",
                ),
                io.Combo.Input(
                    "threshold_mode",
                    options=THRESHOLD_MODES,
                    default="relative",
                    tooltip="relative: a fraction of each image's largest difference. absolute: on the 0–1 scale.",
                ),
            ],
            outputs=[io.Mask.Output(display_name="MASK", tooltip="M_b, 1 where the image was edited.")],
        )

    @classmethod
    def execute(
        cls,
        original: torch.Tensor,
        edited: torch.Tensor,
        metric: str,
        blur_sigma: float,
        threshold: float,
        threshold_mode: str,
    ) -> io.NodeOutput:
        before, after = image_pair(original, edited)
        mask = difference_mask(before, after, metric, blur_sigma, threshold, relative=threshold_mode == "relative")
        return io.NodeOutput(mask.float().cpu())
