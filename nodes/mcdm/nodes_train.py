"""MCDM's model: load a Multi-Conditioned Diffusion Model and train one on a pairs folder.

PreciseEdit_MCDMLoader: an MCDM from models/mcdm, in the official release's layouts or in our format.

Accepted entries of models/mcdm:

- our format: one ``.safetensors`` file written by ``nodes.mcdm.model_file.save_mcdm`` (MCDM Trainer's output);
- a release folder holding the adapter (``adapter.pth`` / ``adapter.safetensors`` / ``adapter.bin``) and the UNet as
  ``unet.pth`` (the released state dicts; diffusers keys, DataParallel ``module.`` prefix allowed) or as a diffusers
  ``unet/`` folder (``config.json`` + ``diffusion_pytorch_model.safetensors`` or ``.bin``).

``.pth`` / ``.bin`` files are read with ``torch.load(weights_only=True)`` only: tensors, never arbitrary objects.
The diffusers UNet is converted to ComfyUI's layout with ``comfy.utils.unet_to_diffusers``; its configuration comes
from ``config.json`` (in ``unet/`` or next to ``unet.pth``) or, for a bare ``unet.pth`` as released, from ComfyUI's
detection of the SD1.x architecture.

PreciseEdit_MCDMTrainer: train a Multi-Conditioned Diffusion Model on a folder of (x_A, x_B) pairs.

The UNet of the base SD1.x model gets an 8-channel conv_in (new channels zero) and is trained with a fresh
image-embedding adapter (``core.mcdm.training`` has the step); the text encoder, the VAE and CLIP vision only encode
the pairs once. Checkpoints go to ``models/mcdm/checkpoints/<prefix>_step_NNNNNNN.safetensors`` (an MCDM file the
loader reads) with the optimiser and generator state beside it in ``<same name>.training`` (also safetensors), both
written to a temporary file and renamed; the final model goes to ``models/mcdm/<prefix>_NNNNN.safetensors``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import comfy.model_detection
import comfy.model_management
import comfy.utils
import folder_paths
import torch
import torch.utils.checkpoint
from safetensors import safe_open
from safetensors.torch import load_file

from ...core.files.atomic_file import save_safetensors_atomically
from ...core.mcdm.adapter import build_adapter, strip_module_prefix
from ...core.mcdm.pairs_folder import PairsData, PairsFolderError, load_pairs
from ...core.mcdm.training import MCDMTraining, NullConditions, TrainingOptions, TrainingSet
from ..common.comfy_node_api import io
from ..common.listed_model_file import listed_model_file
from ..common.model_folders import next_free_path, register_model_folder
from ..common.option_keys import Option, OptionKeys
from ..common.socket_types import JointClip, MCDMType
from ..common.trainer_progress import TrainerProgress
from .conditioning import TEXT_TOKENS
from .model_file import (
    CONCAT_CHANNELS,
    MCDM,
    MCDMVision,
    build_model_patcher,
    load_mcdm,
    mcdm_from_base_model,
    read_mcdm_header,
    save_mcdm,
)
from .pairs_folder_location import pairs_folder_for_reading

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
    def validate_inputs(cls, mcdm_name: str) -> bool | str:
        return listed_model_file(mcdm_name, list_mcdm_entries(), MCDM_FOLDER)

    @classmethod
    def execute(cls, mcdm_name: str, joint_clip: Any = None, clip_vision: Any = None) -> io.NodeOutput:
        mcdm = load_entry(resolve_entry(mcdm_name), mcdm_name)
        if joint_clip is not None:
            mcdm = mcdm.with_vision(checked_vision(joint_clip, mcdm, "joint_clip"))
        elif clip_vision is not None:
            mcdm = mcdm.with_vision(checked_vision(clip_vision, mcdm, "clip_vision"))
        return io.NodeOutput(mcdm, mcdm.model)


register_model_folder(MCDM_FOLDER, EXTENSIONS)


CHECKPOINTS = "checkpoints"


STATE_SUFFIX = ".training"


TRAINING_KEY = "precise_edit_mcdm_training"


NULL_GUIDER = "as_guider"


NULL_OFFICIAL = "official_gray"


NULL_IMAGE_OPTIONS = OptionKeys(
    Option(
        NULL_GUIDER,
        "zero latent + black image, as the MCDM Guider feeds it",
        "zero latent + black image (as the MCDM Guider)",
    ),
    Option(
        NULL_OFFICIAL,
        "mid-gray image (normalised zeros), as the official training code",
        "mid-gray image (official training code)",
    ),
)


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


ENCODE_CHUNK = 8


def encode_text(clip: Any, text: str) -> torch.Tensor:
    """The first 77 tokens of CLIP's conditioning of ``text`` (the release truncates to 77), [77, 768]."""
    tokens = clip.tokenize(text)
    return clip.encode_from_tokens(tokens)[0, :TEXT_TOKENS].float().cpu()


def encode_images(vae: Any, mcdm: MCDM, images: torch.Tensor) -> torch.Tensor:
    """Scaled VAE latents (×0.18215 on SD1.x) of an IMAGE batch, in chunks."""
    chunks = [vae.encode(images[i : i + ENCODE_CHUNK, ..., :3]).float().cpu() for i in range(0, len(images), 8)]
    return mcdm.scale_latent(torch.cat(chunks))


def training_set(data: PairsData, clip: Any, vae: Any, mcdm: MCDM) -> TrainingSet:
    """Run the frozen encoders once over every pair."""
    cache: dict[str, torch.Tensor] = {}

    def text(prompt: str) -> torch.Tensor:
        if prompt not in cache:
            cache[prompt] = encode_text(clip, prompt)
        return cache[prompt]

    with torch.no_grad():
        return TrainingSet(
            source_latents=encode_images(vae, mcdm, data.sources),
            target_latents=encode_images(vae, mcdm, data.targets),
            source_clip=mcdm.vision.hidden_states(data.sources),
            prompts=torch.stack([text(p) for p in data.prompts]),
            source_prompts=torch.stack([text(p) for p in data.source_prompts]),
        )


def null_conditions(mode: str, size: tuple[int, int], *, clip: Any, vae: Any, mcdm: MCDM) -> NullConditions:
    """The dropped conditions: a black image through CLIP always; the latents depend on ``mode`` (help page)."""
    black = torch.zeros(1, *size, 3)
    with torch.no_grad():
        black_latent = encode_images(vae, mcdm, black)[0]
        if mode == NULL_OFFICIAL:
            gray_latent = encode_images(vae, mcdm, torch.full_like(black, 0.5))[0]
            concat, adapter = gray_latent, gray_latent
        else:
            concat, adapter = torch.zeros_like(black_latent), black_latent
        return NullConditions(concat, adapter, mcdm.vision.hidden_states(black)[0], encode_text(clip, ""))


@contextmanager
def checkpointed(unet: torch.nn.Module, enabled: bool) -> Iterator[None]:
    """While active, every layer of the UNet's input/middle/output blocks (res blocks, transformers, resamplers)
    recomputes its activations in backward. ComfyUI runs the layers of a block one by one, so they are wrapped."""
    sequences = [*unet.input_blocks, unet.middle_block, *unet.output_blocks] if enabled else []
    blocks = [layer for sequence in sequences for layer in sequence]
    originals = [block.forward for block in blocks]
    for block, forward in zip(blocks, originals, strict=True):
        block.forward = lambda *a, _f=forward, **k: torch.utils.checkpoint.checkpoint(_f, *a, use_reentrant=False, **k)
    try:
        yield
    finally:
        for block, forward in zip(blocks, originals, strict=True):
            block.forward = forward


def trained_mcdm(base: MCDM, unet: torch.nn.Module, adapter: torch.nn.Module, name: str) -> MCDM:
    """An MCDM (new ModelPatcher) with the trained weights, copied to the CPU."""
    unet_weights = {key: value.detach().float().cpu().clone() for key, value in unet.state_dict().items()}
    adapter_weights = {key: value.detach().float().cpu().clone() for key, value in adapter.state_dict().items()}
    return base.with_weights(unet_state_dict=unet_weights, adapter_state_dict=adapter_weights, name=name)


def save_trained(base: MCDM, adapter: torch.nn.Module, path: Path, record: dict) -> None:
    """The fp32 weights being trained (``base``'s UNet module is the one trained in place) in the MCDM format."""
    save_mcdm(replace(base, adapter=adapter), path, {TRAINING_KEY: json.dumps(record)})


def save_checkpoint(base: MCDM, training: MCDMTraining, *, adapter: torch.nn.Module, path: Path, record: dict) -> None:
    """The model (loadable by MCDM Loader) first, then its training state next to it; each written atomically."""
    record = {**record, "step": training.step_count}
    save_trained(base, adapter, path, record)
    tensors, metadata = training.state()
    save_safetensors_atomically(tensors, path.with_suffix(STATE_SUFFIX), {**metadata, TRAINING_KEY: json.dumps(record)})


def resume_path(resume_from: str) -> Path:
    path = Path(resume_from.strip()).expanduser()
    if not path.is_absolute():
        try:
            path = resolve_entry(resume_from.strip())
        except FileNotFoundError:
            path = Path(resolve_folder()) / resume_from.strip()
    state = path.with_suffix(STATE_SUFFIX)
    if not path.is_file() or not state.is_file() or read_mcdm_header(path) is None:
        raise ValueError(
            f"resume_from {resume_from!r}: expected a checkpoint written by this trainer (an MCDM .safetensors in "
            f"models/{MCDM_FOLDER}/{CHECKPOINTS} with its {STATE_SUFFIX} file beside it)"
        )
    return path


def load_resume(path: Path, training: MCDMTraining, *, unet: torch.nn.Module, adapter: torch.nn.Module, pairs: int):
    """Restore weights, optimiser, generator and step from a checkpoint; refuse one from another training set."""
    checkpoint = load_mcdm(path)
    state_path = path.with_suffix(STATE_SUFFIX)
    with safe_open(str(state_path), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    record = json.loads(metadata[TRAINING_KEY])
    if record.get("pairs") != pairs:
        raise ValueError(
            f"resume_from: the checkpoint was trained on {record.get('pairs')} pairs, the pairs folder has {pairs}; "
            "resume with the same pairs folder"
        )
    unet_weights = checkpoint.unet_state_dict()
    if {k: tuple(v.shape) for k, v in unet_weights.items()} != {
        k: tuple(v.shape) for k, v in unet.state_dict().items()
    }:
        raise ValueError("resume_from: the checkpoint's UNet does not match the base model's architecture")
    with torch.no_grad():
        unet.load_state_dict(unet_weights)
        adapter.load_state_dict(checkpoint.adapter.state_dict())
    training.load_state(tensors, metadata)


class MCDMTrainer(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_MCDMTrainer",
            display_name="MCDM Trainer",
            category="Precise Edit/MCDM",
            description=(
                "Trains a Multi-Conditioned Diffusion Model on a folder of generated pairs (condition/, gt/, "
                "prompt.json): the base SD1.x UNet with conv_in widened to 8 channels (source latent, new weights "
                "zero) and the image-embedding adapter learn ε-prediction MSE at uniform timesteps, with 5 % "
                "reconstruction pairs and 20 % condition dropout; text encoder, VAE and CLIP vision stay frozen. "
                "Saves resumable checkpoints and the final model to models/mcdm."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The base SD1.x model whose UNet is fine-tuned (it is not changed)."),
                io.Clip.Input("clip", tooltip="The base model's text encoder (frozen): encodes the pair prompts."),
                io.Vae.Input("vae", tooltip="The base model's VAE (frozen): encodes x_A and x_B."),
                io.String.Input(
                    "pairs_folder",
                    default="mcdm_pairs/edit",
                    tooltip="The pairs folder (condition/, gt/, prompt.json) inside ComfyUI's output directory (where "
                    "Paired Data Generator writes), else its input directory. '..', absolute paths and drive "
                    "letters are refused.",
                ),
                io.Int.Input("steps", default=5000, min=1, max=10_000_000, tooltip="Total optimiser steps."),
                io.Int.Input("batch_size", default=4, min=1, max=256, tooltip="Pairs per step (4 in the release)."),
                io.Float.Input(
                    "learning_rate",
                    default=5e-6,
                    min=1e-8,
                    max=1.0,
                    step=1e-7,
                    round=1e-9,
                    tooltip="AdamW learning rate (5e-6 in the release; betas 0.9/0.999, weight decay 0.01).",
                ),
                io.Int.Input(
                    "seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, tooltip="Adapter init, batches, noise, dropout."
                ),
                io.Int.Input(
                    "checkpoint_every",
                    default=1000,
                    min=0,
                    max=10_000_000,
                    tooltip="Write a resumable checkpoint every N steps (0: none); one is also written on Interrupt.",
                ),
                io.String.Input(
                    "filename_prefix",
                    default="mcdm",
                    tooltip="Saved as models/mcdm/<prefix>_NNNNN.safetensors; checkpoints under models/mcdm/"
                    "checkpoints/. 'sub/name' saves in a subfolder; '..', absolute paths, drive letters and "
                    "Windows device names (CON, NUL, …) are refused.",
                ),
                io.Combo.Input(
                    "null_image",
                    options=NULL_IMAGE_OPTIONS.keys,
                    default=NULL_GUIDER,
                    tooltip=NULL_IMAGE_OPTIONS.tooltip("What a dropped image condition is in training."),
                ),
                io.Combo.Input(
                    "mixed_precision",
                    options=list(PRECISIONS),
                    default="fp32",
                    tooltip="Autocast dtype of the forward pass (weights stay fp32; fp16 uses a gradient scaler).",
                ),
                io.Boolean.Input(
                    "gradient_checkpointing",
                    default=False,
                    tooltip="Recompute UNet block activations in backward: less memory, about 30 % slower.",
                ),
                io.String.Input(
                    "resume_from",
                    default="",
                    tooltip="A checkpoint in models/mcdm (e.g. checkpoints/mcdm_step_0001000.safetensors) to continue; "
                    "empty: start from the base model.",
                ),
                JointClip.Input(
                    "joint_clip",
                    optional=True,
                    tooltip="CLIP ViT-B/32 (Joint CLIP Loader) whose vision hidden states feed the adapter.",
                ),
                io.ClipVision.Input(
                    "clip_vision",
                    optional=True,
                    tooltip="A stock CLIP_VISION with 50×768 hidden states, used when no joint_clip is given.",
                ),
            ],
            outputs=[
                MCDMType.Output(display_name="MCDM", tooltip="The trained MCDM (also saved), ready for the guider."),
                io.LossMap.Output(display_name="LOSS", tooltip="Loss per step, for Plot Loss Graph."),
            ],
            is_output_node=True,
        )

    @classmethod
    def validate_inputs(cls, null_image: str | None = None) -> bool | str:
        return NULL_IMAGE_OPTIONS.validate("null_image", null_image)

    @classmethod
    def execute(
        cls,
        model: Any,
        clip: Any,
        vae: Any,
        pairs_folder: str,
        steps: int,
        batch_size: int,
        learning_rate: float,
        seed: int,
        checkpoint_every: int,
        filename_prefix: str,
        null_image: str,
        mixed_precision: str,
        gradient_checkpointing: bool,
        resume_from: str,
        joint_clip: Any = None,
        clip_vision: Any = None,
    ) -> io.NodeOutput:
        null_image = NULL_IMAGE_OPTIONS.key("null_image", null_image)
        if joint_clip is None and clip_vision is None:
            raise ValueError("joint_clip / clip_vision: connect CLIP ViT-B/32 vision for the image-embedding adapter")
        final_path = next_free_path(MCDM_FOLDER, filename_prefix)
        try:
            data = load_pairs(pairs_folder_for_reading(pairs_folder))
        except PairsFolderError as error:
            raise ValueError(f"pairs_folder: {error}") from None
        resume = resume_path(resume_from) if resume_from.strip() else None
        checkpoint_stem = final_path.parent / CHECKPOINTS / final_path.stem
        device = comfy.model_management.get_torch_device()
        options = TrainingOptions(batch_size=batch_size, learning_rate=learning_rate)
        record = {"pairs": len(data.prompts), "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed}

        with torch.inference_mode(False), torch.enable_grad():
            base = mcdm_from_base_model(model, name=final_path.name, seed=seed)
            base = base.with_vision(
                checked_vision(
                    *(
                        (joint_clip, base, "joint_clip")
                        if joint_clip is not None
                        else (clip_vision, base, "clip_vision")
                    )
                )
            )
            encoded = training_set(data, clip, vae, base)
            nulls = null_conditions(null_image, tuple(data.sources.shape[1:3]), clip=clip, vae=vae, mcdm=base)
            unet = _trainable_copy(base.unet_module(), device)
            adapter = _trainable_copy(base.adapter, device)
            sampling = model.get_model_object("model_sampling")
            alphas_cumprod = 1.0 / (1.0 + sampling.sigmas.detach().float().cpu() ** 2)
            dtype = PRECISIONS[mixed_precision]
            precision = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype is not None else nullcontext
            scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
            training = MCDMTraining(
                unet,
                adapter,
                data=_to_device(encoded, device),
                nulls=NullConditions(*(t.to(device) for t in vars(nulls).values())),
                alphas_cumprod=alphas_cumprod.to(device),
                options=options,
                seed=seed,
                denoiser=lambda x, t, context: unet(x, t, context=context, transformer_options={}),
                precision=precision,
                scaler=scaler,
            )
            if resume is not None:
                load_resume(resume, training, unet=unet, adapter=adapter, pairs=len(data.prompts))

            def checkpoint() -> None:
                path = checkpoint_stem.parent / f"{checkpoint_stem.name}_step_{training.step_count:07d}.safetensors"
                save_checkpoint(base, training, adapter=adapter, path=path, record=record)

            progress = TrainerProgress(steps, on_interrupt=checkpoint)
            with checkpointed(unet, gradient_checkpointing):
                unet.train()
                while training.step_count < steps:
                    loss = training.step()
                    step = training.step_count
                    if checkpoint_every and step % checkpoint_every == 0:
                        checkpoint()
                    progress.record(step, loss)
            unet.eval()
            result = trained_mcdm(base, unet, adapter, final_path.name).with_vision(base.vision)
            final_record = {**record, "step": training.step_count, "final_loss": progress.final_loss}
            save_trained(base, adapter, final_path, final_record)
        return io.NodeOutput(result, progress.loss_map())


def resolve_folder() -> str:
    import folder_paths

    return folder_paths.get_folder_paths(MCDM_FOLDER)[0]


def _trainable_copy(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``module`` with every parameter a fresh fp32 tensor that requires grad (never an inference tensor)."""
    for sub in module.modules():
        for name, parameter in list(sub._parameters.items()):
            if parameter is not None:
                sub._parameters[name] = torch.nn.Parameter(parameter.detach().to(device, torch.float32).clone())
        for name, buffer in list(sub._buffers.items()):
            if buffer is not None:
                sub._buffers[name] = buffer.detach().to(device).clone()
    return module.to(device)


def _to_device(data: TrainingSet, device: torch.device) -> TrainingSet:
    return TrainingSet(*(tensor.to(device) for tensor in vars(data).values()))


NODES = [MCDMLoader, MCDMTrainer]
