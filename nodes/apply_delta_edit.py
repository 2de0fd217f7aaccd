"""PreciseEdit_ApplyDeltaEdit: edit a CLIP_VISION_OUTPUT along a DeltaSpace direction."""

import comfy.clip_vision
import torch

from ..core.clip_delta import DeltaDirection
from ..core.delta_edit import DeltaEditModel, apply_delta, predict_delta, straightforward_delta
from ..core.delta_relevance import DEFAULT_RELATIVE_THRESHOLD, DEFAULT_THRESHOLD, relevant_channels
from .comfy_node_api import io
from .delta_training_data import clip_vision_fingerprint
from .joint_clip_loader import JointClipModel
from .node_text import show_on_node
from .socket_types import DeltaDirectionType, DeltaMapperType, JointClip

METHODS = ["delta mapper", "straightforward"]
# "relative": keep channels with |R·Δt| ≥ relative_threshold · max |R·Δt|; "absolute": |R·Δt| ≥ threshold (paper)
THRESHOLD_MODES = ["relative", "absolute"]


def source_output(clip_vision, image: torch.Tensor | None, clip_vision_output) -> comfy.clip_vision.Output:
    """The CLIP_VISION_OUTPUT to edit: the connected one, or the image encoded as CLIPVisionEncode (centre crop)."""
    if clip_vision_output is not None:
        return clip_vision_output
    if clip_vision is None or image is None:
        raise ValueError("connect clip_vision_output, or clip_vision and image to encode the source image")
    return clip_vision.encode_image(image, crop=True)


def edited_output(source: comfy.clip_vision.Output, image_embeds: torch.Tensor) -> comfy.clip_vision.Output:
    """A new Output with ``image_embeds`` replaced; the hidden states are the source's."""
    output = comfy.clip_vision.Output()
    for key, value in vars(source).items():
        output[key] = value
    output["image_embeds"] = image_embeds
    return output


def mapper_delta(
    delta_mapper: DeltaEditModel | None,
    joint_clip: JointClipModel | None,
    clip_vision,
    image: torch.Tensor | None,
    codes: torch.Tensor,
    delta: DeltaDirection,
    threshold: float,
    relative: bool,
) -> torch.Tensor:
    if delta_mapper is None or joint_clip is None or image is None:
        missing = [
            n for n, v in (("delta_mapper", delta_mapper), ("joint_clip", joint_clip), ("image", image)) if v is None
        ]
        raise ValueError(f"method 'delta mapper' needs {', '.join(missing)} connected")
    if joint_clip.fingerprint != delta_mapper.clip_fingerprint:
        raise ValueError(
            f"the joint CLIP {joint_clip.name!r} is not the one this Delta Mapper was trained with: load that one"
        )
    if clip_vision is not None and clip_vision_fingerprint(clip_vision) != delta_mapper.target_fingerprint:
        raise ValueError("this Delta Mapper was trained for another CLIP vision model: connect that one")
    clip = joint_clip.encode_images(image)
    if codes.shape[0] not in (1, clip.shape[0]):
        raise ValueError(f"{codes.shape[0]} conditioning embeddings for {clip.shape[0]} images: the batches differ")
    return predict_delta(delta_mapper, codes.expand(clip.shape[0], -1), clip, delta, threshold, relative)


def edit_report(kept: int, channels: int, codes: torch.Tensor, change: torch.Tensor, strength: float) -> str:
    """What the edit did, for the node's text: channels changed and the edit's length against the embedding's."""
    length = float((strength * change.float()).norm(dim=-1).mean())
    share = length / max(float(codes.float().norm(dim=-1).mean()), torch.finfo(torch.float32).tiny)
    return (
        f"DeltaEdit: {kept} of {channels} channels kept ({kept / channels:.1%}); "
        f"edit length {length:.4g} ({share:.2%} of the embedding's)"
    )


class ApplyDeltaEdit(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_ApplyDeltaEdit",
            display_name="Apply DeltaEdit",
            category="Precise Edit/DeltaEdit",
            description=(
                "Moves an image's CLIP vision embedding along a text (or image) direction: the Delta Mapper turns "
                "the DeltaSpace direction into a change Δs of the conditioning embedding, channels whose relevance "
                "to the direction is below the threshold are zeroed, and s + strength · Δs is returned as a "
                "CLIP_VISION_OUTPUT for unCLIP Conditioning (or SVD / Stable Zero123 conditioning, which also read "
                "image_embeds). The threshold is relative to the most relevant channel by default (the paper's "
                "absolute 0.03 keeps almost no channel of a 768-d CLIP embedding); the fraction of channels kept is "
                "an output and is shown on the node."
            ),
            inputs=[
                DeltaDirectionType.Input("delta", tooltip="From CLIP Delta Direction, with the same joint CLIP."),
                io.Combo.Input(
                    "method",
                    options=METHODS,
                    default="delta mapper",
                    tooltip="'delta mapper': DeltaEdit. 'straightforward': the paper's baseline, adds the CLIP "
                    "direction to the embedding directly (only when joint CLIP and CLIP vision are one model).",
                ),
                io.Float.Input(
                    "strength",
                    default=1.0,
                    min=-10.0,
                    max=10.0,
                    step=0.05,
                    tooltip="Multiplies the change; 0 returns the source embedding unchanged, 1 is the paper's edit.",
                ),
                io.Float.Input(
                    "threshold",
                    default=DEFAULT_THRESHOLD,
                    min=0.0,
                    max=1.0,
                    step=0.005,
                    tooltip="threshold_mode 'absolute' only: channels whose relevance |R·Δt| is below it are left "
                    "unchanged (0.03 in the paper, tuned for StyleGAN; on a 768-d CLIP embedding it keeps almost no "
                    "channel; 0 edits every channel). Delta mapper method only.",
                ),
                DeltaMapperType.Input(
                    "delta_mapper", optional=True, tooltip="The trained mapper (method 'delta mapper')."
                ),
                JointClip.Input(
                    "joint_clip",
                    optional=True,
                    tooltip="The mapper's joint CLIP, to embed the source image in DeltaSpace.",
                ),
                io.ClipVision.Input("clip_vision", optional=True, tooltip="The conditioning CLIP vision model."),
                io.Image.Input("image", optional=True, tooltip="The source image (one or a batch)."),
                io.ClipVisionOutput.Input(
                    "clip_vision_output",
                    optional=True,
                    tooltip="The source's CLIP vision output, instead of encoding image with clip_vision.",
                ),
                io.Combo.Input(
                    "threshold_mode",
                    options=THRESHOLD_MODES,
                    default="relative",
                    optional=True,
                    tooltip="Disentanglement rule. 'relative': keep the channels whose relevance |R·Δt| is at least "
                    "relative_threshold × the largest one (independent of the CLIP model and of ‖Δt‖). 'absolute': "
                    "keep |R·Δt| ≥ threshold, the paper's rule. Delta mapper method only.",
                ),
                io.Float.Input(
                    "relative_threshold",
                    default=DEFAULT_RELATIVE_THRESHOLD,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    optional=True,
                    tooltip="threshold_mode 'relative' only: channels less relevant than this fraction of the most "
                    "relevant channel are left unchanged. 0.25 keeps about 40 % of a 768-d embedding's channels; 0 "
                    "keeps every channel, 1 only the most relevant.",
                ),
            ],
            outputs=[
                io.ClipVisionOutput.Output(
                    display_name="CLIP_VISION_OUTPUT",
                    tooltip="The edited embedding (image_embeds), hidden states kept.",
                ),
                io.Float.Output(
                    display_name="CHANNELS_KEPT",
                    tooltip="The fraction of the embedding's channels the edit changes (those past the threshold); "
                    "1 for the straightforward method, 0 at strength 0.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        delta: DeltaDirection,
        method: str,
        strength: float,
        threshold: float,
        delta_mapper: DeltaEditModel | None = None,
        joint_clip: JointClipModel | None = None,
        clip_vision=None,
        image: torch.Tensor | None = None,
        clip_vision_output=None,
        threshold_mode: str = "relative",
        relative_threshold: float = DEFAULT_RELATIVE_THRESHOLD,
    ) -> io.NodeOutput:
        if threshold_mode not in THRESHOLD_MODES:
            raise ValueError(f"threshold_mode: expected one of {THRESHOLD_MODES}, got {threshold_mode!r}")
        source = source_output(clip_vision, image, clip_vision_output)
        codes = source.image_embeds
        if strength == 0:
            show_on_node("DeltaEdit: strength 0, the embedding is returned unedited")
            return io.NodeOutput(edited_output(source, codes), 0.0)
        channels = codes.shape[-1]
        if method == "straightforward":
            change, kept = straightforward_delta(codes, delta), channels
        else:
            relative = threshold_mode == "relative"
            cut = relative_threshold if relative else threshold
            change = mapper_delta(delta_mapper, joint_clip, clip_vision, image, codes, delta, cut, relative)
            relevance = delta_mapper.relevance
            kept = int(relevant_channels(relevance, delta.raw.to(relevance.device), cut, relative).sum())
        show_on_node(edit_report(kept, channels, codes, change, strength))
        return io.NodeOutput(edited_output(source, apply_delta(codes, change, strength)), kept / channels)
