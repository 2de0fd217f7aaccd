"""PreciseEdit_MCDMLoader: an MCDM from models/mcdm, in the official release's layouts or in our format.

Accepted entries of models/mcdm:

- our format: one ``.safetensors`` file written by ``nodes.mcdm_model.save_mcdm`` (MCDM Trainer's output);
- a release folder holding the adapter (``adapter.pth`` / ``adapter.safetensors`` / ``adapter.bin``) and the UNet as
  ``unet.pth`` (the released state dicts; diffusers keys, DataParallel ``module.`` prefix allowed) or as a diffusers
  ``unet/`` folder (``config.json`` + ``diffusion_pytorch_model.safetensors`` or ``.bin``).

``.pth`` / ``.bin`` files are read with ``torch.load(weights_only=True)`` only: tensors, never arbitrary objects.
The diffusers UNet is converted to ComfyUI's layout with ``comfy.utils.unet_to_diffusers``; its configuration comes
from ``config.json`` (in ``unet/`` or next to ``unet.pth``) or, for a bare ``unet.pth`` as released, from ComfyUI's
detection of the SD1.x architecture.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import comfy.model_detection
import comfy.utils
import folder_paths
import torch
from safetensors.torch import load_file

from ..core.mcdm_adapter import build_adapter, strip_module_prefix
from .comfy_node_api import io
from .mcdm_model import CONCAT_CHANNELS, MCDM, MCDMVision, build_model_patcher, load_mcdm, read_mcdm_header
from .model_folders import register_model_folder
from .socket_types import JointClip, MCDMType

MCDM_FOLDER = "mcdm"
EXTENSIONS = {".safetensors", ".pth", ".bin"}
ADAPTER_FILES = ("adapter.safetensors", "adapter.pth", "adapter.bin")
UNET_FILES = ("unet.safetensors", "unet.pth", "unet.bin")
DIFFUSERS_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
CROSS_ATTENTION_BLOCKS = ("CrossAttnDownBlock2D", "CrossAttnUpBlock2D")
PLAIN_BLOCKS = ("DownBlock2D", "UpBlock2D")
# Settings ComfyUI's UNetModel has fixed; a diffusers config with other values cannot be converted faithfully.
FIXED_SETTINGS = {
    "norm_num_groups": 32,
    "act_fn": "silu",
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "conv_in_kernel": 3,
    "conv_out_kernel": 3,
    "class_embed_type": None,
    "addition_embed_type": None,
    "time_embedding_type": "positional",
    "only_cross_attention": False,
    "dual_cross_attention": False,
    "upcast_attention": False,
    "resnet_time_scale_shift": "default",
    "mid_block_type": "UNetMidBlock2DCrossAttn",
}


def _first(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / name for name in names if (folder / name).is_file()), None)


def release_unet(folder: Path) -> Path | None:
    """The UNet of a release folder: ``unet.pth``-style file or a diffusers ``unet/`` folder's weights."""
    return _first(folder, UNET_FILES) or _first(folder / "unet", DIFFUSERS_WEIGHTS)


def is_release_folder(folder: Path) -> bool:
    return _first(folder, ADAPTER_FILES) is not None or release_unet(folder) is not None


def list_mcdm_entries() -> list[str]:
    """Release folders (as ``name/``) and other ``.safetensors`` files under every models/mcdm path."""
    entries: set[str] = set()
    for root in folder_paths.get_folder_paths(MCDM_FOLDER):
        if not os.path.isdir(root):
            continue
        for current, dirs, files in os.walk(root, followlinks=True):
            relative = os.path.relpath(current, root)
            if relative != "." and is_release_folder(Path(current)):
                entries.add(relative.replace(os.sep, "/") + "/")
                dirs.clear()
                continue
            dirs.sort()
            for file in files:
                if file.endswith(".safetensors") and file not in ADAPTER_FILES + UNET_FILES:
                    entries.add(os.path.normpath(os.path.join(relative, file)).replace(os.sep, "/"))
    return sorted(entries)


def resolve_entry(name: str) -> Path:
    for root in folder_paths.get_folder_paths(MCDM_FOLDER):
        path = Path(root) / name.rstrip("/")
        if path.exists():
            return path
    raise FileNotFoundError(
        f"{name!r} is not in models/{MCDM_FOLDER} ({', '.join(folder_paths.get_folder_paths(MCDM_FOLDER))})"
    )


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from safetensors, or from a ``.pth``/``.bin`` through ``torch.load(weights_only=True)``."""
    if path.suffix == ".safetensors":
        state_dict = load_file(str(path))
    else:
        try:
            state_dict = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as error:
            raise ValueError(
                f"{path.name}: not a plain tensor state dict ({error}); only weights_only checkpoints are read"
            ) from None
        if isinstance(state_dict, dict) and isinstance(state_dict.get("state_dict"), dict):
            state_dict = state_dict["state_dict"]
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f"{path.name}: expected a state dict of tensors")
    return strip_module_prefix(state_dict)


def _per_block(value: Any, count: int) -> list[int]:
    return list(value) if isinstance(value, (list, tuple)) else [value] * count


def unet_config_from_diffusers(config: dict, name: str) -> dict:
    """ComfyUI's UNet configuration for a diffusers ``UNet2DConditionModel`` config (SD1.x-style blocks)."""
    for key, fixed in FIXED_SETTINGS.items():
        if key in config and any(value != fixed for value in _listed(config[key])):
            raise ValueError(f"{name}: diffusers setting {key}={config[key]!r} is not supported (expected {fixed!r})")
    down, up = list(config["down_block_types"]), list(config["up_block_types"])
    for block in down + up:
        if block not in CROSS_ATTENTION_BLOCKS + PLAIN_BLOCKS:
            raise ValueError(f"{name}: diffusers block {block!r} is not supported")
    widths = list(config["block_out_channels"])
    levels = len(widths)
    layers = _per_block(config.get("layers_per_block", 2), levels)
    depth = _per_block(config.get("transformer_layers_per_block", 1), levels)
    if len(set(depth)) != 1:
        raise ValueError(f"{name}: per-block transformer depths {depth} are not supported")
    heads = config.get("num_attention_heads") or config.get("attention_head_dim", 8)
    if isinstance(heads, (list, tuple)):
        if len(set(heads)) != 1:
            raise ValueError(f"{name}: per-block head counts {heads} are not supported")
        heads = heads[0]
    transformer_depth: list[int] = []
    for level, block in enumerate(down):
        transformer_depth += [depth[level] if block.startswith("CrossAttn") else 0] * layers[level]
    transformer_depth_output: list[int] = []
    for level in range(levels):
        block = up[levels - 1 - level]
        transformer_depth_output += [depth[level] if block.startswith("CrossAttn") else 0] * (layers[level] + 1)
    return {
        "image_size": 32,
        "in_channels": int(config["in_channels"]),
        "out_channels": int(config.get("out_channels", 4)),
        "model_channels": widths[0],
        "num_res_blocks": layers,
        "channel_mult": [width // widths[0] for width in widths],
        "transformer_depth": transformer_depth,
        "transformer_depth_output": transformer_depth_output,
        "transformer_depth_middle": depth[-1],
        "context_dim": int(config["cross_attention_dim"]),
        "use_linear_in_transformer": bool(config.get("use_linear_projection", False)),
        "use_spatial_transformer": True,
        "legacy": False,
        "num_heads": int(heads),
        "num_head_channels": -1,
        "adm_in_channels": None,
        "use_temporal_attention": False,
        "use_temporal_resblock": False,
    }


def _listed(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def detected_unet_config(state_dict: dict[str, torch.Tensor], name: str) -> dict:
    """The configuration of a bare diffusers UNet state dict, by ComfyUI's detection of its 4-channel variant."""
    if "conv_in.weight" not in state_dict:
        raise ValueError(f"{name}: not a diffusers UNet state dict (no 'conv_in.weight')")
    probe = {**state_dict, "conv_in.weight": state_dict["conv_in.weight"][:, :4]}
    detected = comfy.model_detection.unet_config_from_diffusers_unet(probe)
    if detected is None:
        raise ValueError(f"{name}: the UNet architecture is not one ComfyUI recognises; add a diffusers config.json")
    return {**detected, "in_channels": int(state_dict["conv_in.weight"].shape[1])}


def comfy_unet_state_dict(diffusers_sd: dict[str, torch.Tensor], unet_config: dict, name: str) -> dict:
    """The diffusers UNet weights under ComfyUI's (ldm) keys."""
    mapping = comfy.utils.unet_to_diffusers(unet_config)
    converted = {mapping[key]: value for key, value in diffusers_sd.items() if key in mapping}
    unmapped = sorted(set(diffusers_sd) - set(mapping))
    if unmapped:
        raise ValueError(f"{name}: UNet weights without a ComfyUI counterpart: {unmapped[:5]}")
    return converted


def load_release(folder: Path, name: str) -> MCDM:
    """An MCDM from a release folder (``unet.pth`` or ``unet/`` diffusers folder, plus ``adapter.*``)."""
    unet_path, adapter_path = release_unet(folder), _first(folder, ADAPTER_FILES)
    if unet_path is None:
        raise FileNotFoundError(
            f"{name}: no UNet in {folder} (expected {', '.join(UNET_FILES)} or unet/{DIFFUSERS_WEIGHTS[0]})"
        )
    if adapter_path is None:
        raise FileNotFoundError(f"{name}: no adapter in {folder} (expected {' or '.join(ADAPTER_FILES)})")
    diffusers_sd = read_weights(unet_path)
    config_path = unet_path.parent / "config.json"
    if config_path.is_file():
        unet_config = unet_config_from_diffusers(json.loads(config_path.read_text()), name)
    else:
        unet_config = detected_unet_config(diffusers_sd, name)
    if unet_config["in_channels"] != 4 + CONCAT_CHANNELS:
        raise ValueError(f"{name}: the UNet takes {unet_config['in_channels']} input channels; an MCDM UNet takes 8")
    model = build_model_patcher(unet_config, comfy_unet_state_dict(diffusers_sd, unet_config, name), name)
    try:
        adapter = build_adapter(read_weights(adapter_path))
    except ValueError as error:
        raise ValueError(f"{name}: {adapter_path.name}: {error}") from None
    return MCDM(model, adapter, None, name)


def load_entry(path: Path, name: str) -> MCDM:
    if path.is_dir():
        return load_release(path, name)
    if path.suffix != ".safetensors" or read_mcdm_header(path) is None:
        raise ValueError(
            f"{name}: not an MCDM: expected our .safetensors format or a folder with unet.pth + adapter.pth"
        )
    return load_mcdm(path, name)


def checked_vision(source: Any, mcdm: MCDM, input_name: str) -> MCDMVision:
    """Wrap ``source`` and check its hidden states have the adapter's shape (50×768 for ViT-B/32)."""
    vision = MCDMVision(source)
    shape = tuple(vision.hidden_states(torch.zeros(1, 32, 32, 3)).shape[1:])
    expected = (mcdm.adapter.config.clip_tokens, mcdm.adapter.config.width)
    if shape != expected:
        raise ValueError(
            f"{input_name}: its vision hidden states are {shape} (tokens × width); the MCDM adapter takes {expected} "
            "(CLIP ViT-B/32, e.g. openai/clip-vit-base-patch32 through Joint CLIP Loader)"
        )
    return vision


class MCDMLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_MCDMLoader",
            display_name="MCDM Loader",
            category="Precise Edit/MCDM",
            description=(
                "Loads a Multi-Conditioned Diffusion Model (8-channel UNet + image-embedding adapter) from "
                "models/mcdm: the official release (unet.pth + adapter.pth, or a diffusers unet/ folder) or a file "
                "saved by MCDM Trainer, with the CLIP ViT-B/32 vision tower its adapter reads."
            ),
            inputs=[
                io.Combo.Input(
                    "mcdm_name",
                    options=list_mcdm_entries(),
                    tooltip="A release folder (name/ with unet.pth or unet/, and adapter.pth) or one of our "
                    ".safetensors files in models/mcdm.",
                ),
                JointClip.Input(
                    "joint_clip",
                    optional=True,
                    tooltip="CLIP ViT-B/32 (transformers CLIPModel from Joint CLIP Loader) whose vision hidden "
                    "states feed the adapter. Either this or clip_vision is needed to edit.",
                ),
                io.ClipVision.Input(
                    "clip_vision",
                    optional=True,
                    tooltip="A stock CLIP_VISION whose last hidden state is 50 tokens of width 768, used when no "
                    "joint_clip is given.",
                ),
            ],
            outputs=[
                MCDMType.Output(
                    display_name="MCDM",
                    tooltip="The MCDM: its UNet as a ComfyUI model, the adapter and the CLIP vision tower.",
                ),
                io.Model.Output(
                    display_name="MODEL",
                    tooltip="The MCDM's 8-channel UNet, for schedulers (BasicScheduler) and model patches; patched "
                    "copies go back into MCDM Guider's model input.",
                ),
            ],
        )

    @classmethod
    def execute(cls, mcdm_name: str, joint_clip: Any = None, clip_vision: Any = None) -> io.NodeOutput:
        mcdm = load_entry(resolve_entry(mcdm_name), mcdm_name)
        if joint_clip is not None:
            mcdm = mcdm.with_vision(checked_vision(joint_clip, mcdm, "joint_clip"))
        elif clip_vision is not None:
            mcdm = mcdm.with_vision(checked_vision(clip_vision, mcdm, "clip_vision"))
        return io.NodeOutput(mcdm, mcdm.model)


register_model_folder(MCDM_FOLDER, EXTENSIONS)
