"""A synthetic MCDM paired dataset: a coloured shape on a textured background; the edit recolours only the shape.

x_A shows a red square or disc on a smooth random background, x_B the same scene with the shape blue: the edit
changes the shape's colour, the background stays. Every pair has its own background, shape, place and size, so a
model must read x_A to produce x_B. ``shape_masks`` says where the shape is, for background-preservation metrics.
"""

from dataclasses import dataclass
from pathlib import Path

import torch

from harness.tiny_models import SD15_UNET, random_unet
from precise_edit.core.mcdm.pairs_folder import append_pairs

SOURCE_PROMPT = "a red shape"
TARGET_PROMPT = "a blue shape"
SOURCE_COLOUR = (0.9, 0.1, 0.1)
TARGET_COLOUR = (0.1, 0.2, 0.9)


@dataclass(frozen=True)
class SyntheticPairs:
    """x_A and x_B as (N, H, W, 3) images in [0, 1], and the shape masks (N, H, W) (1 inside the shape)."""

    sources: torch.Tensor
    targets: torch.Tensor
    shape_masks: torch.Tensor


def _background(size: int, generator: torch.Generator) -> torch.Tensor:
    coarse = torch.rand(1, 3, 4, 4, generator=generator) * 0.6 + 0.2
    smooth = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)
    return smooth[0].permute(1, 2, 0).clamp(0.0, 1.0)


def _shape_mask(size: int, generator: torch.Generator) -> torch.Tensor:
    radius = int(torch.randint(size // 6, size // 4 + 1, (1,), generator=generator))
    cy, cx = (int(v) for v in torch.randint(radius, size - radius, (2,), generator=generator))
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    if int(torch.randint(0, 2, (1,), generator=generator)):
        return (((ys - cy) ** 2 + (xs - cx) ** 2) <= radius**2).float()
    return (((ys - cy).abs() <= radius) & ((xs - cx).abs() <= radius)).float()


def make_pairs(count: int, size: int = 64, seed: int = 0) -> SyntheticPairs:
    """``count`` pairs of ``size``² images, deterministic in ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    sources, targets, masks = [], [], []
    for _ in range(count):
        background = _background(size, generator)
        mask = _shape_mask(size, generator)[..., None]
        sources.append(background * (1 - mask) + torch.tensor(SOURCE_COLOUR) * mask)
        targets.append(background * (1 - mask) + torch.tensor(TARGET_COLOUR) * mask)
        masks.append(mask[..., 0])
    return SyntheticPairs(torch.stack(sources), torch.stack(targets), torch.stack(masks))


def write_pairs_folder(folder: Path, pairs: SyntheticPairs) -> Path:
    """Write ``pairs`` in the official layout (condition/, gt/, prompt.json) and return the folder."""
    append_pairs(folder, pairs.sources, pairs.targets, prompt=TARGET_PROMPT, source_prompt=SOURCE_PROMPT)
    return folder


# A tiny SD1.x UNet the trainer can fine-tune on a CPU in seconds: the SD1.5 stand-in's layout (cross-attention
# width 768, conv projections) at width 32, two levels (1.6 M parameters).
TINY_UNET = {**SD15_UNET, "model_channels": 32, "channel_mult": [1, 2]}


def tiny_base_model(seed: int = 11, channels: int = 32):
    """A random-weight SD1.5-type MODEL (ModelPatcher) with the tiny UNet above, fp32 on the CPU.

    ``channels`` widens it: at 32 every GroupNorm group holds one channel, which normalises each channel's mean
    (its colour) away, so colour edits learn faster from 64 on (5.2 M parameters).
    """
    import comfy.model_patcher
    import comfy.supported_models

    unet_config = {**TINY_UNET, "model_channels": channels}
    config = comfy.supported_models.SD15(dict(unet_config))
    config.set_inference_dtype(torch.float32, None)
    model = config.get_model({})
    model.diffusion_model.load_state_dict(random_unet(unet_config, seed).state_dict())
    cpu = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(model, load_device=cpu, offload_device=cpu)


@dataclass(frozen=True)
class EditScores:
    """Held-out edit quality. In latent space: MSE to E(x_B) overall, on the cells the edit leaves alone
    (background) and on the cells it changes, and the MSE to E(x_A) on those changed cells (for the direction).
    In image space (meaningful with the cell-colour VAE, ``harness.tiny_models.cell_vae``): the decoded sample's mean
    colour on the 8×8 cells inside the shape, and its mean absolute difference from x_A on the cells without any
    shape pixel, next to the VAE's own round-trip error there (the floor)."""

    mse: float
    background: float
    edited_to_target: float
    edited_to_source: float
    shape_colour: tuple[float, float, float]
    background_change: float
    background_floor: float


def sample_edits(mcdm, vae, clip, pairs: SyntheticPairs, prompt: str, steps: int = 10, seed: int = 0):
    """Every source edited by the MCDM with ``prompt``: deterministic DDIM from seeded noise, no guidance.
    Returns the final latents and the scaled latents of x_A and x_B."""
    from precise_edit.nodes.mcdm.nodes_train import encode_images, encode_text

    sampling = mcdm.model.get_model_object("model_sampling")
    alphas = 1.0 / (1.0 + sampling.sigmas.float() ** 2)
    unet = mcdm.unet_module()
    with torch.no_grad():
        source = encode_images(vae, mcdm, pairs.sources)
        target = encode_images(vae, mcdm, pairs.targets)
        tokens = mcdm.image_tokens(mcdm.vision.hidden_states(pairs.sources), source)
        text = encode_text(clip, prompt).expand(len(source), -1, -1)
        context = mcdm.context(text, tokens)
        z = torch.randn(source.shape, generator=torch.Generator().manual_seed(seed))
        times = torch.linspace(999, 0, steps).round().long()
        for i, t in enumerate(times):
            eps = unet(torch.cat([z, source], 1), t.repeat(len(z)).float(), context=context, transformer_options={})
            alpha = alphas[t]
            x0 = (z - (1 - alpha).sqrt() * eps) / alpha.sqrt()
            alpha_next = alphas[times[i + 1]] if i + 1 < steps else torch.tensor(1.0)
            z = alpha_next.sqrt() * x0 + (1 - alpha_next).sqrt() * eps
    return z, source, target


def decoded(vae, mcdm, latent: torch.Tensor) -> torch.Tensor:
    """IMAGE (N, H, W, 3) of scaled latents."""
    return vae.decode(mcdm.model.get_model_object("latent_format").process_out(latent)).float()[..., :3]


def edit_scores(mcdm, vae, clip, pairs: SyntheticPairs, steps: int = 10, seed: int = 0) -> EditScores:
    """Sample every source with the target prompt (``sample_edits``) and compare with x_B and x_A."""
    z, source, target = sample_edits(mcdm, vae, clip, pairs, TARGET_PROMPT, steps, seed)
    change = (target - source).abs().mean(1, keepdim=True)
    edited = (change > 0.1 * change.amax(dim=(2, 3), keepdim=True)).expand_as(z)
    error = (z - target) ** 2
    coverage = torch.nn.functional.avg_pool2d(pairs.shape_masks[:, None], 8)
    inside = torch.nn.functional.interpolate((coverage == 1).float(), scale_factor=8)[:, 0, ..., None] > 0
    outside = torch.nn.functional.interpolate((coverage == 0).float(), scale_factor=8)[:, 0, ..., None] > 0
    with torch.no_grad():
        image = decoded(vae, mcdm, z)
        round_trip = decoded(vae, mcdm, source)
    inside, outside = inside.expand_as(image), outside.expand_as(image)
    colour = image[inside].reshape(-1, 3).mean(0)
    return EditScores(
        mse=float(error.mean()),
        background=float(error[~edited].mean()),
        edited_to_target=float(error[edited].mean()),
        edited_to_source=float(((z - source) ** 2)[edited].mean()),
        shape_colour=(float(colour[0]), float(colour[1]), float(colour[2])),
        background_change=float((image - pairs.sources)[outside].abs().mean()),
        background_floor=float((round_trip - pairs.sources)[outside].abs().mean()),
    )
