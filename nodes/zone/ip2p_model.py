"""Checking that a MODEL is an InstructPix2Pix UNet: the noisy latent and the source image latent concatenated."""

from comfy.model_patcher import ModelPatcher

IP2P_INPUT_CHANNELS = 8


def require_instruct_pix2pix(model: ModelPatcher, name: str = "model") -> None:
    """A clear error unless ``model`` is a UNet with 8 input channels (InstructPix2Pix, MagicBrush, CosXL Edit)."""
    unet_config = getattr(model.model.model_config, "unet_config", {})
    channels = unet_config.get("in_channels")
    if channels != IP2P_INPUT_CHANNELS:
        raise ValueError(
            f"{name} must be an InstructPix2Pix model (a UNet with {IP2P_INPUT_CHANNELS} input channels: the noisy "
            f"latent and the source image latent); the connected {type(model.model).__name__} takes {channels} "
            "input channels. Load instruct-pix2pix (or MagicBrush) with Load Checkpoint."
        )
