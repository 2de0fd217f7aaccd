"""PE_JOINT_CLIP: a joint text–image CLIP for DeltaSpace, under ComfyUI's model management."""

from collections.abc import Sequence
from pathlib import Path

import comfy.model_management
import comfy.model_patcher
import comfy.sd1_clip
import torch

from ...core.deltaedit.joint_clip import JointCLIP

IMAGE_CHUNK = 16


class JointClipModel:
    """A loaded joint CLIP whose weights ComfyUI moves to the text-encoder device while it encodes."""

    def __init__(self, joint: JointCLIP) -> None:
        self.joint = joint
        self.patcher = comfy.model_patcher.ModelPatcher(
            joint.module,
            load_device=comfy.model_management.text_encoder_device(),
            offload_device=comfy.model_management.text_encoder_offload_device(),
        )

    @property
    def dim(self) -> int:
        return self.joint.dim

    @property
    def fingerprint(self) -> str:
        return self.joint.fingerprint

    @property
    def name(self) -> str:
        return self.joint.name

    def _load(self) -> torch.device:
        comfy.model_management.load_models_gpu([self.patcher], force_full_load=True)
        return self.patcher.load_device

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return self.joint.encode_texts(texts, self._load())

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Projected embeddings ``[B, dim]`` of an IMAGE batch, encoded in chunks."""
        device = self._load()
        return torch.cat([self.joint.encode_images(chunk, device) for chunk in images.split(IMAGE_CHUNK)])


def tokenizer_folder() -> Path:
    """ComfyUI's copy of the OpenAI CLIP tokenizer, used when a CLIP's folder has none."""
    return Path(comfy.sd1_clip.__file__).parent / "sd1_tokenizer"
