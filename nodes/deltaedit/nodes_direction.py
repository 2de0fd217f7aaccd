"""DeltaEdit's edit: the joint CLIP, a text direction in CLIP DeltaSpace, and the edit applied to conditioning.

PreciseEdit_JointCLIPLoader: a joint text–image CLIP for DeltaSpace, under ComfyUI's model management.

PreciseEdit_CLIPDeltaDirection: a DeltaSpace direction from two texts (Δt) or two images (Δi).

PreciseEdit_ApplyDeltaEdit: edit a CLIP_VISION_OUTPUT along a DeltaSpace direction.
"""

import comfy.clip_vision
import comfy.model_management
import comfy.model_patcher
import comfy.sd1_clip
import torch
import torch.nn.functional as F

from ...core.deltaedit.clip_delta import DeltaDirection, image_direction, text_direction
from ...core.deltaedit.delta_edit import DeltaEditModel, apply_delta, predict_delta, straightforward_delta
from ...core.deltaedit.delta_relevance import DEFAULT_RELATIVE_THRESHOLD, DEFAULT_THRESHOLD, relevant_channels
from ...core.deltaedit.joint_clip import load_joint_clip
from ..common.comfy_node_api import io
from ..common.listed_model_file import listed_model_file
from ..common.model_folders import CLIP_JOINT, model_path
from ..common.node_text import show_on_node
from ..common.option_keys import Option, OptionKeys
from ..common.socket_types import DeltaDirectionType, DeltaMapperType, JointClip
from .delta_training_data import clip_vision_fingerprint
from .joint_clip_model import JointClipModel, tokenizer_folder


class JointCLIPLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        import folder_paths

        return io.Schema(
            node_id="PreciseEdit_JointCLIPLoader",
            display_name="Joint CLIP Loader (DeltaEdit)",
            category="Precise Edit/DeltaEdit",
            description=(
                "Loads a CLIP with both towers and projections (transformers CLIPModel, safetensors) from "
                "models/clip_joint: the DeltaSpace encoder whose text and image feature differences DeltaEdit "
                "aligns. OpenAI ViT-B/32 is the paper's choice; any joint CLIP works."
            ),
            inputs=[
                io.Combo.Input(
                    "clip_name",
                    options=folder_paths.get_filename_list(CLIP_JOINT),
                    tooltip="A .safetensors file in models/clip_joint: a save_pretrained folder's model.safetensors "
                    "(config.json beside it), or a single file with transformers CLIPModel keys.",
                ),
            ],
            outputs=[JointClip.Output(display_name="JOINT_CLIP", tooltip="The joint text–image CLIP.")],
        )

    @classmethod
    def validate_inputs(cls, clip_name: str) -> bool | str:
        import folder_paths

        return listed_model_file(clip_name, folder_paths.get_filename_list(CLIP_JOINT), CLIP_JOINT)

    @classmethod
    def execute(cls, clip_name: str) -> io.NodeOutput:
        joint = load_joint_clip(model_path(CLIP_JOINT, clip_name), tokenizer_folder(), name=clip_name)
        return io.NodeOutput(JointClipModel(joint))


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
                joint_clip.encode_texts,
                source_text,
                target_text,
                use_templates=prompt_templates,
                clip_fingerprint=joint_clip.fingerprint,
            )
        return io.NodeOutput(direction)


METHOD_OPTIONS = OptionKeys(
    Option("delta_mapper", "DeltaEdit: the Delta Mapper predicts the change", "delta mapper"),
    Option(
        "straightforward",
        "the paper's baseline: adds the CLIP direction to the embedding directly (only when joint CLIP and CLIP "
        "vision are one model)",
    ),
)


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
    *,
    codes: torch.Tensor,
    delta: DeltaDirection,
    threshold: float,
    relative: bool,
) -> torch.Tensor:
    if delta_mapper is None or joint_clip is None or image is None:
        missing = [
            n for n, v in (("delta_mapper", delta_mapper), ("joint_clip", joint_clip), ("image", image)) if v is None
        ]
        raise ValueError(f"method delta_mapper needs {', '.join(missing)} connected")
    if joint_clip.fingerprint != delta_mapper.clip_fingerprint:
        raise ValueError(
            f"the joint CLIP {joint_clip.name!r} is not the one this Delta Mapper was trained with: load that one"
        )
    if clip_vision is not None and clip_vision_fingerprint(clip_vision) != delta_mapper.target_fingerprint:
        raise ValueError("this Delta Mapper was trained for another CLIP vision model: connect that one")
    clip = joint_clip.encode_images(image)
    if codes.shape[0] not in (1, clip.shape[0]):
        raise ValueError(f"{codes.shape[0]} conditioning embeddings for {clip.shape[0]} images: the batches differ")
    return predict_delta(
        delta_mapper, codes.expand(clip.shape[0], -1), clip, delta, threshold=threshold, relative=relative
    )


def edit_report(*, kept: int, channels: int, codes: torch.Tensor, change: torch.Tensor, strength: float) -> str:
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
                    options=METHOD_OPTIONS.keys,
                    default="delta_mapper",
                    tooltip=METHOD_OPTIONS.tooltip("How the CLIP direction becomes a change of the image embedding."),
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
                    "delta_mapper", optional=True, tooltip="The trained mapper (method delta_mapper)."
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
    def validate_inputs(cls, method: str | None = None) -> bool | str:
        return METHOD_OPTIONS.validate("method", method)

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
        method = METHOD_OPTIONS.key("method", method)
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
            change = mapper_delta(
                delta_mapper, joint_clip, clip_vision, image, codes=codes, delta=delta, threshold=cut, relative=relative
            )
            relevance = delta_mapper.relevance
            kept = int(relevant_channels(relevance, delta.raw.to(relevance.device), cut, relative).sum())
        show_on_node(edit_report(kept=kept, channels=channels, codes=codes, change=change, strength=strength))
        return io.NodeOutput(edited_output(source, apply_delta(codes, change, strength)), kept / channels)


NODES = [JointCLIPLoader, CLIPDeltaDirection, ApplyDeltaEdit]
