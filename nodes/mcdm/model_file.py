"""PE_MCDM: a Multi-Conditioned Diffusion Model under ComfyUI's model management, and our file format for it.

An ``MCDM`` holds

- ``model``: a ComfyUI MODEL (ModelPatcher) of the 8-channel UNet. Its model class is InstructPix2Pix's (the
  ``concat_latent_image`` condition fills channels 4-7) except that the concat latent is scaled by the latent format
  (×0.18215 on SD1.x) as MCDM was trained, where InstructPix2Pix takes the raw VAE latent;
- ``adapter``: the image-embedding adapter (``core.mcdm.adapter.MCDMAdapter``);
- ``vision``: the CLIP vision tower whose ``last_hidden_state`` feeds the adapter, or None until one is attached.

Our format is one ``.safetensors`` file: the UNet in ComfyUI's (ldm) key layout under ``unet.``, the adapter under
``adapter.``, and the JSON metadata entry ``precise_edit_mcdm`` with the UNet configuration and the adapter shapes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.supported_models
import comfy.utils
import torch
from safetensors import safe_open

from ...core.files.atomic_file import save_safetensors_atomically
from ...core.mcdm.adapter import AdapterConfig, MCDMAdapter, build_adapter, mcdm_context

FORMAT_KEY = "precise_edit_mcdm"
FORMAT_VERSION = 1
UNET_PREFIX = "unet."
ADAPTER_PREFIX = "adapter."
CONCAT_CHANNELS = 4
CONV_IN = "input_blocks.0.0.weight"
JSON_UNET_KEYS = (
    "image_size",
    "in_channels",
    "out_channels",
    "model_channels",
    "num_res_blocks",
    "channel_mult",
    "transformer_depth",
    "transformer_depth_output",
    "transformer_depth_middle",
    "context_dim",
    "use_linear_in_transformer",
    "use_spatial_transformer",
    "legacy",
    "num_heads",
    "num_head_channels",
    "adm_in_channels",
    "use_temporal_attention",
    "use_temporal_resblock",
    "use_checkpoint",
)


class MCDMUNetModel(comfy.model_base.SD15_instructpix2pix):
    """InstructPix2Pix's concat conditioning with MCDM's scaling: channels 4-7 get process_latent_in(z_A)."""

    def __init__(self, model_config: Any, device: Any = None) -> None:
        super().__init__(model_config, device=device)
        self.process_ip2p_image_in = self.latent_format.process_in


class MCDMModelConfig(comfy.supported_models.SD15_instructpix2pix):
    """SD1.x with an 8-channel input; the UNet configuration is taken as given (no head-count override)."""

    unet_extra_config: dict = {}

    def get_model(self, state_dict: dict, prefix: str = "", device: Any = None) -> MCDMUNetModel:
        return MCDMUNetModel(self, device=device)


def json_unet_config(unet_config: dict) -> dict:
    """The JSON-serialisable architecture entries of a ComfyUI UNet configuration."""
    return {key: unet_config[key] for key in JSON_UNET_KEYS if key in unet_config}


def check_unet_config(unet_config: dict, name: str) -> None:
    if unet_config.get("in_channels") != 4 + CONCAT_CHANNELS:
        raise ValueError(
            f"{name}: the UNet takes {unet_config.get('in_channels')} input channels; an MCDM UNet takes 8 "
            "(4 noisy-latent + 4 source-image latent channels)"
        )
    if unet_config.get("context_dim") != 768 or unet_config.get("adm_in_channels") is not None:
        raise ValueError(
            f"{name}: MCDM is an SD1.x model (cross-attention width 768, no pooled-vector input); this UNet has "
            f"context_dim {unet_config.get('context_dim')} and adm_in_channels {unet_config.get('adm_in_channels')}"
        )


def build_model_patcher(unet_config: dict, unet_state_dict: dict[str, torch.Tensor], name: str) -> Any:
    """A ModelPatcher of an 8-channel UNet in ComfyUI's key layout, dtype and devices chosen like UNETLoader's."""
    check_unet_config(unet_config, name)
    config = MCDMModelConfig(json_unet_config(unet_config))
    load_device = comfy.model_management.get_torch_device()
    offload_device = comfy.model_management.unet_offload_device()
    unet_dtype = comfy.model_management.unet_dtype(
        model_params=comfy.utils.calculate_parameters(unet_state_dict),
        supported_dtypes=list(config.supported_inference_dtypes),
        weight_dtype=comfy.utils.weight_dtype(unet_state_dict),
    )
    manual_cast = comfy.model_management.unet_manual_cast(unet_dtype, load_device, config.supported_inference_dtypes)
    config.set_inference_dtype(unet_dtype, manual_cast)
    model = config.get_model({}).to(offload_device)
    expected = set(model.diffusion_model.state_dict())
    missing = sorted(expected - set(unet_state_dict))
    unexpected = sorted(set(unet_state_dict) - expected)
    if missing or unexpected:
        raise ValueError(
            f"{name}: the UNet weights do not fit its configuration: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    model.load_model_weights(dict(unet_state_dict), "")
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload_device)


class MCDMVision:
    """CLIP vision whose ``last_hidden_state`` feeds the adapter: a PE_JOINT_CLIP (transformers CLIPModel, e.g.
    openai/clip-vit-base-patch32) or a stock CLIP_VISION whose hidden states have the adapter's shape."""

    def __init__(self, source: Any) -> None:
        self.source = source

    @property
    def name(self) -> str:
        return str(getattr(self.source, "name", type(self.source).__name__))

    def hidden_states(self, images: torch.Tensor) -> torch.Tensor:
        """``last_hidden_state`` ``[B, N, D]`` (float32) of an IMAGE batch, resized and centre-cropped like
        CLIPProcessor (short side to the model's size, bicubic) and normalised with the model's mean and std."""
        if hasattr(self.source, "joint"):
            joint = self.source.joint
            comfy.model_management.load_models_gpu([self.source.patcher], force_full_load=True)
            device = self.source.patcher.load_device
            dtype = next(joint.clip.parameters()).dtype
            with torch.no_grad():
                pixels = joint.pixel_values(images.cpu()).to(device, dtype)
                hidden = joint.clip.vision_model(pixel_values=pixels).last_hidden_state
            return hidden.float().cpu()
        return self.source.encode_image(images, crop=True)["last_hidden_state"].float().cpu()


@dataclass(frozen=True)
class MCDM:
    """An MCDM: the 8-channel UNet as a ComfyUI MODEL, the image-embedding adapter and (optionally) CLIP vision."""

    model: Any
    adapter: MCDMAdapter
    vision: Any = None
    name: str = "mcdm"

    @property
    def unet_config(self) -> dict:
        return json_unet_config(self.model.model.model_config.unet_config)

    def unet_module(self) -> torch.nn.Module:
        """The ComfyUI ``UNetModel``: ε = unet(cat([z_t, scaled z_A], 1), timesteps, context=[c_p ; c_im])."""
        return self.model.model.diffusion_model

    def unet_state_dict(self) -> dict[str, torch.Tensor]:
        return {key: value.detach() for key, value in self.unet_module().state_dict().items()}

    def scale_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """Raw VAE latent (what ComfyUI's VAE Encode returns) → the scaled latent of concat and adapter (×0.18215)."""
        return self.model.model.latent_format.process_in(latent)

    def image_tokens(self, clip_hidden_states: torch.Tensor, scaled_latent: torch.Tensor) -> torch.Tensor:
        """c_im ``[B, 50, 768]`` from CLIP ``last_hidden_state`` and the scaled VAE latent of the same image."""
        parameter = next(self.adapter.parameters())
        return self.adapter(clip_hidden_states.to(parameter), scaled_latent.to(parameter))

    @staticmethod
    def context(text: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
        """The cross-attention context [c_p ; c_im] (77 + 50 = 127 tokens for one text chunk)."""
        return mcdm_context(text, image_tokens)

    def with_weights(
        self,
        unet_state_dict: dict[str, torch.Tensor] | None = None,
        adapter_state_dict: dict[str, torch.Tensor] | None = None,
        name: str | None = None,
    ) -> MCDM:
        """A new MCDM with other UNet and/or adapter weights (this one is left as it is)."""
        model = self.model
        if unet_state_dict is not None:
            model = build_model_patcher(self.unet_config, unet_state_dict, name or self.name)
        adapter = self.adapter if adapter_state_dict is None else build_adapter(adapter_state_dict)
        return MCDM(model, adapter, self.vision, name or self.name)

    def with_vision(self, vision: Any) -> MCDM:
        return replace(self, vision=vision)


def widen_conv_in(unet_state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Channels 0-3 of ``conv_in`` keep the base weights; new channels 4-7 are zero (the release's ``get_unet``)."""
    weight = unet_state_dict[CONV_IN]
    extra = torch.zeros(weight.shape[0], CONCAT_CHANNELS, *weight.shape[2:], dtype=weight.dtype, device=weight.device)
    return {**unet_state_dict, CONV_IN: torch.cat([weight, extra], dim=1)}


def mcdm_from_base_model(base_model: Any, name: str = "mcdm", seed: int = 0) -> MCDM:
    """An untrained MCDM from a 4-channel SD1.x MODEL: conv_in widened with zeros, a fresh adapter (seeded)."""
    unet_config = dict(base_model.model.model_config.unet_config)
    if unet_config.get("in_channels") != 4:
        raise ValueError(f"base_model: expected a 4-channel SD1.x UNet, got {unet_config.get('in_channels')} channels")
    state_dict = {key: value.detach().cpu() for key, value in base_model.model.diffusion_model.state_dict().items()}
    unet_config["in_channels"] = 4 + CONCAT_CHANNELS
    model = build_model_patcher(unet_config, widen_conv_in(state_dict), name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        adapter = MCDMAdapter()
    return MCDM(model, adapter, None, name)


def save_mcdm(mcdm: MCDM, path: Path, extra_metadata: dict[str, str] | None = None) -> Path:
    """Write ``mcdm`` in our format (temporary file in the same folder, then rename); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {UNET_PREFIX + key: value for key, value in mcdm.unet_state_dict().items()}
    tensors.update({ADAPTER_PREFIX + key: value.detach() for key, value in mcdm.adapter.state_dict().items()})
    tensors = {key: value.to("cpu").contiguous() for key, value in tensors.items()}
    header = {
        "format_version": FORMAT_VERSION,
        "unet_config": mcdm.unet_config,
        "adapter": mcdm.adapter.config.to_dict(),
    }
    metadata = {**(extra_metadata or {}), FORMAT_KEY: json.dumps(header)}
    save_safetensors_atomically(tensors, path, metadata)
    return path


def read_mcdm_header(path: Path) -> dict | None:
    """Our format's header of a ``.safetensors`` file, or None when the file is not in our format."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    return json.loads(metadata[FORMAT_KEY]) if FORMAT_KEY in metadata else None


def load_mcdm(path: Path, name: str | None = None) -> MCDM:
    """Read an MCDM written by ``save_mcdm`` (no CLIP vision attached)."""
    path = Path(path)
    name = name or path.name
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no such file {path}")
    header = read_mcdm_header(path)
    if header is None:
        raise ValueError(f"{name}: not a Precise Edit MCDM file (no {FORMAT_KEY!r} metadata)")
    tensors = comfy.utils.load_torch_file(str(path), safe_load=True)
    unet = {key[len(UNET_PREFIX) :]: value for key, value in tensors.items() if key.startswith(UNET_PREFIX)}
    adapter = {key[len(ADAPTER_PREFIX) :]: value for key, value in tensors.items() if key.startswith(ADAPTER_PREFIX)}
    if not adapter:
        raise ValueError(f"{name}: the file has no adapter weights ({ADAPTER_PREFIX}*)")
    built = build_adapter(adapter)
    if built.config != AdapterConfig(**header["adapter"]):
        raise ValueError(f"{name}: the adapter weights do not match the adapter shapes in the file's metadata")
    return MCDM(build_model_patcher(header["unet_config"], unet, name), built, None, name)
