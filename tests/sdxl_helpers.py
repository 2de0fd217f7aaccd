"""The tiny SDXL-architecture UNet, random SDXL conditioning and a sampler for it, shared by the attention tests."""

import pytest
import torch

SDXL_LATENT_HW = (8, 12)


@pytest.fixture(scope="module", name="sdxl")
def sdxl_unet(comfy, tiny_models):
    """The tiny SDXL UNet as the stock UNETLoader returns it (import this fixture; request it as ``sdxl``)."""
    import nodes

    return nodes.UNETLoader().load_unet("tiny-sdxl-unet.safetensors", "default")[0]


def sdxl_conditioning(seed: int) -> list:
    g = torch.Generator().manual_seed(seed)
    pooled = torch.randn(1, 1280, generator=g)
    return [[torch.randn(1, 77, 2048, generator=g), {"pooled_output": pooled, "width": 96, "height": 64}]]


def sample_sdxl(model, steps: int = 2, seed: int = 0) -> torch.Tensor:
    """Sample a 64×96 image's latent with random positive (seed 1) and negative (seed 2) conditioning."""
    import comfy.sample

    latent = torch.zeros(1, 4, *SDXL_LATENT_HW)
    noise = comfy.sample.prepare_noise(latent, seed)
    return comfy.sample.sample(
        model,
        noise,
        steps,
        5.0,
        "euler",
        "normal",
        sdxl_conditioning(1),
        sdxl_conditioning(2),
        latent,
        disable_pbar=True,
        seed=seed,
    )
