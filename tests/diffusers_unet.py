"""diffusers oracles for parity tests: the tiny SD1.5 UNet as a ``UNet2DConditionModel`` with the same weights, and
the DDIM scheduler configuration of Stable Diffusion (and of the null-text inversion notebook)."""

SD_DDIM_SCHEDULER = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
)


def to_diffusers_unet(model, sample_size: int):
    """Convert the UNet of a loaded SD1.x ModelPatcher (fp32 copy of its weights); returned in eval mode."""
    import comfy.utils
    from diffusers import UNet2DConditionModel

    config = model.model.model_config.unet_config
    levels = len(config["channel_mult"])
    unet = UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=config["in_channels"],
        out_channels=config["out_channels"],
        block_out_channels=tuple(config["model_channels"] * m for m in config["channel_mult"]),
        down_block_types=("CrossAttnDownBlock2D",) * levels,
        up_block_types=("CrossAttnUpBlock2D",) * levels,
        layers_per_block=config["num_res_blocks"][0],
        cross_attention_dim=config["context_dim"],
        attention_head_dim=config["num_heads"],
    )
    comfy_weights = model.model.diffusion_model.state_dict()
    mapping = comfy.utils.unet_to_diffusers(config)
    converted = {name: comfy_weights[source].float() for name, source in mapping.items() if source in comfy_weights}
    unet.load_state_dict(converted, strict=True)
    return unet.eval()
