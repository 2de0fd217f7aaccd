"""PreciseEdit_CLIPDeltaDirection: a DeltaSpace direction from two texts (Δt) or two images (Δi)."""

import torch
import torch.nn.functional as F

from ..core.clip_delta import DeltaDirection, image_direction, text_direction
from .comfy_node_api import io
from .joint_clip_loader import JointClipModel
from .socket_types import DeltaDirectionType, JointClip

MODES = ["texts", "images"]


def mean_image_embedding(joint_clip: JointClipModel, images: torch.Tensor | None, name: str) -> torch.Tensor:
    """The normalised mean of the batch's normalised embeddings ``[dim]``."""
    if images is None or images.shape[0] == 0:
        raise ValueError(f"mode 'images' needs the {name} input: connect an IMAGE (or switch the mode to 'texts')")
    return F.normalize(F.normalize(joint_clip.encode_images(images), dim=-1).mean(dim=0), dim=0)


class CLIPDeltaDirection(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_CLIPDeltaDirection",
            display_name="CLIP Delta Direction (DeltaEdit)",
            category="Precise Edit/DeltaEdit",
            description=(
                "The edit direction in CLIP DeltaSpace: Δt = t(target) − t(source) from two texts, each averaged "
                "over the 79 ImageNet prompt templates as the official DeltaEdit code does, or Δi from two images. "
                "Put the attribute in the target only: source 'face', target 'face with smile'."
            ),
            inputs=[
                JointClip.Input("joint_clip", tooltip="The joint CLIP the Delta Mapper was trained with."),
                io.Combo.Input(
                    "mode",
                    options=MODES,
                    default="texts",
                    tooltip="'texts': Δt from the two texts; 'images': Δi from the two image inputs.",
                ),
                io.String.Input("source_text", default="face", tooltip="What the image shows now, e.g. 'face'."),
                io.String.Input(
                    "target_text",
                    default="face with smile",
                    tooltip="The same with the change, e.g. 'face with smile'.",
                ),
                io.Boolean.Input(
                    "prompt_templates",
                    default=True,
                    tooltip="Average each text over the 79 ImageNet templates ('a photo of the {}.', …) as the paper.",
                ),
                io.Image.Input(
                    "source_image", optional=True, tooltip="Mode 'images': image(s) without the change (averaged)."
                ),
                io.Image.Input(
                    "target_image", optional=True, tooltip="Mode 'images': image(s) with the change (averaged)."
                ),
            ],
            outputs=[
                DeltaDirectionType.Output(
                    display_name="DELTA",
                    tooltip="The direction: unit Δ for the mapper, raw Δ for the disentanglement threshold.",
                )
            ],
        )

    @classmethod
    def execute(
        cls,
        joint_clip: JointClipModel,
        mode: str,
        source_text: str,
        target_text: str,
        prompt_templates: bool,
        source_image: torch.Tensor | None = None,
        target_image: torch.Tensor | None = None,
    ) -> io.NodeOutput:
        if mode == "images":
            direction: DeltaDirection = image_direction(
                mean_image_embedding(joint_clip, source_image, "source_image"),
                mean_image_embedding(joint_clip, target_image, "target_image"),
                clip_fingerprint=joint_clip.fingerprint,
            )
        else:
            direction = text_direction(
                joint_clip.encode_texts, source_text, target_text, prompt_templates, joint_clip.fingerprint
            )
        return io.NodeOutput(direction)
