"""A joint text–image CLIP (transformers ``CLIPModel``) read from safetensors: the encoder of CLIP DeltaSpace.

Accepted layouts (never a pickle):

- a ``save_pretrained`` folder: ``config.json`` + ``model.safetensors`` (+ tokenizer and preprocessor files);
- one ``.safetensors`` file with transformers' CLIPModel keys, configured by a sidecar ``<name>.json`` (a
  CLIPConfig) when present, else by the shapes of its tensors with OpenAI CLIP's conventions (64-channel attention
  heads, quick-GELU, layer-norm ε 1e-5).

Embeddings are the projected features E_text(x) = P_t · pool(text_model(x)) and
E_image(x) = P_v · pool(vision_model(x)), with images resized so the short side is the model's image size (bicubic,
antialiased), centre-cropped and normalised by the CLIP mean and standard deviation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
OPENAI_HEAD_DIM = 64
TOKENIZER_FILES = ("vocab.json", "merges.txt")
SHARD_INDEX = "model.safetensors.index.json"
REQUIRED_PARTS = {
    "text tower": "text_model.embeddings.token_embedding.weight",
    "text projection": "text_projection.weight",
    "vision tower": "vision_model.embeddings.patch_embedding.weight",
    "vision projection": "visual_projection.weight",
}

log = logging.getLogger(__name__)


def check_joint_state_dict(state_dict: dict[str, torch.Tensor], name: str) -> None:
    """Raise a ValueError naming every missing tower or projection of a joint CLIP."""
    missing = [part for part, key in REQUIRED_PARTS.items() if key not in state_dict]
    if missing:
        hint = (
            " It looks like an OpenAI/OpenCLIP checkpoint; convert it to transformers' CLIPModel format."
            if any(key.startswith(("visual.", "transformer.resblocks")) for key in state_dict)
            else " A CLIP-vision or text-encoder file holds one tower only; DeltaSpace needs both towers and both "
            "projections (transformers CLIPModel keys)."
        )
        raise ValueError(f"{name} is not a joint CLIP: it has no {', no '.join(missing)}.{hint}")


def _layer_count(state_dict: dict[str, torch.Tensor], tower: str) -> int:
    pattern = re.compile(rf"^{tower}\.encoder\.layers\.(\d+)\.")
    indices = {int(match.group(1)) for key in state_dict if (match := pattern.match(key))}
    return max(indices) + 1 if indices else 0


def config_from_state_dict(state_dict: dict[str, torch.Tensor]) -> CLIPConfig:
    """A CLIPConfig inferred from tensor shapes, with OpenAI CLIP's head size, activation and ε."""
    token = state_dict["text_model.embeddings.token_embedding.weight"]
    patch = state_dict["vision_model.embeddings.patch_embedding.weight"]
    positions = state_dict["vision_model.embeddings.position_embedding.weight"].shape[0]
    grid = round((positions - 1) ** 0.5)
    text_width, vision_width = token.shape[1], patch.shape[0]
    text = {
        "vocab_size": token.shape[0],
        "hidden_size": text_width,
        "intermediate_size": state_dict["text_model.encoder.layers.0.mlp.fc1.weight"].shape[0],
        "num_hidden_layers": _layer_count(state_dict, "text_model"),
        "num_attention_heads": max(1, text_width // OPENAI_HEAD_DIM),
        "max_position_embeddings": state_dict["text_model.embeddings.position_embedding.weight"].shape[0],
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
    }
    vision = {
        "hidden_size": vision_width,
        "intermediate_size": state_dict["vision_model.encoder.layers.0.mlp.fc1.weight"].shape[0],
        "num_hidden_layers": _layer_count(state_dict, "vision_model"),
        "num_attention_heads": max(1, vision_width // OPENAI_HEAD_DIM),
        "patch_size": patch.shape[2],
        "image_size": grid * patch.shape[2],
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
    }
    projection = state_dict["text_projection.weight"].shape[0]
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection)


def tensor_fingerprint(*tensors: torch.Tensor) -> str:
    """A short hex digest of the tensors' shapes and float32 values."""
    digest = hashlib.sha256()
    for tensor in tensors:
        values = tensor.detach().to("cpu", torch.float32).contiguous()
        digest.update(str(tuple(values.shape)).encode())
        digest.update(values.numpy().tobytes())
    return digest.hexdigest()[:16]


class JointCLIPModule(torch.nn.Module):
    """The CLIPModel inside a plain module (model managers may set attributes such as ``device`` on it)."""

    def __init__(self, clip: CLIPModel) -> None:
        super().__init__()
        self.clip = clip


@dataclass(kw_only=True)
class JointCLIP:
    """A loaded joint CLIP: the module, its tokenizer and image preprocessing, and a fingerprint of its weights."""

    module: JointCLIPModule
    tokenizer: Any
    image_size: int
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    name: str
    fingerprint: str

    @property
    def clip(self) -> CLIPModel:
        return self.module.clip

    @property
    def dim(self) -> int:
        return int(self.clip.config.projection_dim)

    @property
    def context_length(self) -> int:
        return int(self.clip.config.text_config.max_position_embeddings)

    def encode_texts(self, texts: Sequence[str], device: torch.device | str = "cpu") -> torch.Tensor:
        """Projected text features ``[N, dim]`` (float32, on CPU)."""
        tokens = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.context_length, return_tensors="pt"
        )
        dtype = next(self.clip.parameters()).dtype
        with torch.no_grad():
            output = self.clip.text_model(
                input_ids=tokens["input_ids"].to(device), attention_mask=tokens["attention_mask"].to(device)
            )
            features = self.clip.text_projection(output.pooler_output.to(dtype))
        return features.float().cpu()

    def pixel_values(self, images: torch.Tensor) -> torch.Tensor:
        """IMAGE ``[B, H, W, C]`` in [0, 1] → normalised ``[B, 3, S, S]`` (short side to S, centre crop)."""
        pixels = images[..., :3].movedim(-1, 1).float()
        height, width = pixels.shape[2:]
        scale = self.image_size / min(height, width)
        size = (max(self.image_size, round(height * scale)), max(self.image_size, round(width * scale)))
        if size != (height, width):
            pixels = F.interpolate(pixels, size=size, mode="bicubic", antialias=True, align_corners=False)
        top, left = (size[0] - self.image_size) // 2, (size[1] - self.image_size) // 2
        pixels = pixels[:, :, top : top + self.image_size, left : left + self.image_size].clamp(0.0, 1.0)
        mean = torch.tensor(self.image_mean, dtype=pixels.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.image_std, dtype=pixels.dtype).view(1, 3, 1, 1)
        return (pixels - mean) / std

    def encode_images(self, images: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
        """Projected image features ``[B, dim]`` (float32, on CPU) of an IMAGE batch."""
        dtype = next(self.clip.parameters()).dtype
        with torch.no_grad():
            output = self.clip.vision_model(pixel_values=self.pixel_values(images.cpu()).to(device, dtype))
            features = self.clip.visual_projection(output.pooler_output)
        return features.float().cpu()


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a readable JSON file: {error}") from None


def _preprocessing(folder: Path, default_size: int) -> tuple[int, tuple, tuple]:
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return default_size, CLIP_MEAN, CLIP_STD
    data = _read_json(path)
    crop = data.get("crop_size", default_size)
    size = int(crop.get("height", default_size) if isinstance(crop, dict) else crop)
    return size, tuple(data.get("image_mean", CLIP_MEAN)), tuple(data.get("image_std", CLIP_STD))


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The file's tensors, or all shards' when it is one shard of a save_pretrained folder's index."""
    index = path.parent / SHARD_INDEX
    if index.is_file():
        shards = sorted(set(_read_json(index).get("weight_map", {}).values()))
        if path.name in shards:
            state_dict: dict[str, torch.Tensor] = {}
            for shard in shards:
                state_dict.update(load_file(str(path.parent / shard)))
            return state_dict
    return load_file(str(path))


def load_joint_clip(path: Path, fallback_tokenizer: Path, name: str | None = None) -> JointCLIP:
    """Load a joint CLIP from ``path`` (a ``.safetensors`` file, possibly inside a save_pretrained folder).

    The tokenizer comes from the file's folder when it has ``vocab.json`` and ``merges.txt``, else from
    ``fallback_tokenizer`` (the OpenAI CLIP BPE shared by OpenAI and OpenCLIP models).
    """
    path = Path(path)
    name = name or path.name
    if path.suffix.lower() != ".safetensors":
        raise ValueError(f"{name}: only .safetensors files are loaded (pickled checkpoints are never opened)")
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no such file {path}")
    state_dict = _load_state_dict(path)
    check_joint_state_dict(state_dict, name)
    folder = path.parent
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        config = CLIPConfig.from_dict(_read_json(sidecar))
    elif (folder / "config.json").is_file():
        config = CLIPConfig.from_dict(_read_json(folder / "config.json"))
    else:
        config = config_from_state_dict(state_dict)
        log.info("%s: no config.json next to it; configuration inferred from the tensor shapes", name)
    clip = CLIPModel(config).eval()
    missing, _ = clip.load_state_dict(state_dict, strict=False)
    missing = [key for key in missing if not key.endswith("position_ids")]
    if missing:
        raise ValueError(f"{name}: the weights do not fit its configuration; missing {missing[:5]}")
    tokenizer_dir = folder if all((folder / file).is_file() for file in TOKENIZER_FILES) else fallback_tokenizer
    tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_dir))
    vocab = clip.config.text_config.vocab_size
    if len(tokenizer) > vocab:
        raise ValueError(f"{name}: its text tower has {vocab} token embeddings but the tokenizer has {len(tokenizer)}")
    size, mean, std = _preprocessing(folder, int(clip.config.vision_config.image_size))
    fingerprint = tensor_fingerprint(clip.text_projection.weight, clip.visual_projection.weight)
    return JointCLIP(
        module=JointCLIPModule(clip),
        tokenizer=tokenizer,
        image_size=size,
        image_mean=mean,
        image_std=std,
        name=name,
        fingerprint=fingerprint,
    )
