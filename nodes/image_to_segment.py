"""PreciseEdit_ImageToSegment: the image SAM segments in ZONE, the original for a removal and the edit otherwise."""

import torch

from .comfy_node_api import io


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
