"""The lab's joint image–text encoder: a transformers ``CLIPModel`` at a tiny size, the DeltaSpace of DeltaEdit.

Both towers are 64 wide with one 64-channel head (OpenAI CLIP's head size, so the pack's Joint CLIP Loader would
infer the configuration from the tensor shapes alone), two layers each; images are the world's 128 px in 16 px
patches; both project to a 64-d joint space. The text tower reads OpenAI CLIP's BPE tokens (ComfyUI's
``sd1_tokenizer``, the tokenizer the loader falls back to). The same weights serve twice:

- as the pack's PE_JOINT_CLIP, written as a ``save_pretrained`` folder (``config.json`` + ``model.safetensors``)
  into ``models/clip_joint`` where Joint CLIP Loader lists it;
- as ComfyUI's CLIP_VISION (``comfy.clip_vision.ClipVisionModel`` from a vision config written beside it), whose
  ``image_embeds`` (the projected pooled output, the same numbers as the joint CLIP's image features) condition
  the lab's unCLIP model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from lab.models.comfy_setup import import_comfy
from lab.world import SIZE

WIDTH = 64
EMBEDDING_DIM = 64
PATCH = 16
TOWER: dict[str, Any] = {
    "hidden_size": WIDTH,
    "intermediate_size": 4 * WIDTH,
    "num_hidden_layers": 2,
    "num_attention_heads": 1,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}
TEXT_CONFIG: dict[str, Any] = {**TOWER, "vocab_size": 49408, "max_position_embeddings": 77}
VISION_CONFIG: dict[str, Any] = {**TOWER, "image_size": SIZE, "patch_size": PATCH, "num_channels": 3}
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
FOLDER_NAME = "lab_toy_clip"
WEIGHTS_FILE = "model.safetensors"
VISION_CONFIG_FILE = "clip_vision_config.json"


def tokenizer_folder() -> Path:
    """ComfyUI's copy of OpenAI CLIP's tokenizer."""
    import_comfy()
    import comfy.sd1_clip

    return Path(comfy.sd1_clip.__file__).parent / "sd1_tokenizer"


def tokenizer() -> Any:
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(tokenizer_folder()))


def clip_config() -> Any:
    from transformers import CLIPConfig

    return CLIPConfig(text_config=TEXT_CONFIG, vision_config=VISION_CONFIG, projection_dim=EMBEDDING_DIM)


def build_model(state_dict: dict[str, torch.Tensor] | None = None, seed: int = 0) -> Any:
    """A transformers CLIPModel of the lab's size: initialised from ``seed``, or holding ``state_dict``."""
    from transformers import CLIPModel

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = CLIPModel(clip_config())
    if state_dict is not None:
        model.load_state_dict(state_dict, strict=False)
    return model


def pixel_values(images: torch.Tensor) -> torch.Tensor:
    """IMAGE ``[B, 128, 128, 3]`` in [0, 1] → CLIP's normalised ``[B, 3, 128, 128]``, quantised to 8 bits as
    ComfyUI's ``clip_preprocess`` does (no resize: the world's images are the model's size)."""
    pixels = (images.movedim(-1, 1).float().clamp(0, 1) * 255).round() / 255
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (pixels - mean) / std


def comfy_vision_config() -> dict[str, Any]:
    """The vision tower as ComfyUI's ClipVisionModel reads it (``clip_vision_model``, with the projection)."""
    return {
        **VISION_CONFIG,
        "model_type": "clip_vision_model",
        "projection_dim": EMBEDDING_DIM,
        "image_mean": CLIP_MEAN,
        "image_std": CLIP_STD,
    }


def write_folder(state_dict: dict[str, torch.Tensor], folder: Path) -> Path:
    """Write the joint CLIP as a ``save_pretrained`` folder (plus ComfyUI's vision config) unless it is there with
    the same weights; return the weights file."""
    from safetensors.torch import load_file, save_file

    weights = folder / WEIGHTS_FILE
    if weights.is_file():
        stored = load_file(str(weights))
        if stored.keys() == state_dict.keys() and all(torch.equal(stored[k], state_dict[k]) for k in stored):
            return weights
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(clip_config().to_dict(), indent=1))
    (folder / VISION_CONFIG_FILE).write_text(json.dumps(comfy_vision_config(), indent=1))
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(tokenizer_folder() / name, folder / name)
    save_file({key: value.contiguous() for key, value in state_dict.items()}, str(weights))
    return weights


def clip_vision(state_dict: dict[str, torch.Tensor], config_path: Path) -> Any:
    """ComfyUI's CLIP_VISION holding the toy CLIP's vision tower and projection (``config_path``: a JSON file of
    ``comfy_vision_config``)."""
    import_comfy()
    import comfy.clip_vision

    if not config_path.is_file():
        config_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.write_text(json.dumps(comfy_vision_config(), indent=1))
    model = comfy.clip_vision.ClipVisionModel(str(config_path))
    vision = {
        key: value for key, value in state_dict.items() if key.startswith(("vision_model.", "visual_projection."))
    }
    missing, _ = model.load_sd(vision)
    missing = [key for key in missing if not key.endswith("position_ids")]
    if missing:
        raise RuntimeError(f"the toy CLIP's vision tower does not fit ComfyUI's CLIP vision model: missing {missing}")
    return model
