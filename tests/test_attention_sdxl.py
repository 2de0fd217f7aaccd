"""The attention patch on an SDXL-architecture UNet: layers found from the model (transformer depths 2 and 10,
linear projections, 2048-d context) and masking exact in every layer."""

import pytest
import torch
from attention_helpers import PROMPT, grid_zero, inject

LATENT_HW = (8, 12)


@pytest.fixture(scope="module")
def sdxl(comfy, tiny_models):
    import nodes

    return nodes.UNETLoader().load_unet("tiny-sdxl-unet.safetensors", "default")[0]


def sdxl_conditioning(seed: int) -> list:
    g = torch.Generator().manual_seed(seed)
    pooled = torch.randn(1, 1280, generator=g)
    return [[torch.randn(1, 77, 2048, generator=g), {"pooled_output": pooled, "width": 96, "height": 64}]]


def test_sdxl_layers_are_every_transformer_block_of_the_model(sdxl):
    from precise_edit.nodes.cross_attention_patch import cross_attention_layers

    layers = cross_attention_layers(sdxl)
    keys = [layer.key for layer in layers]
    assert keys[:4] == [("input", 4, 0), ("input", 4, 1), ("input", 5, 0), ("input", 5, 1)]
    assert keys[4:24] == [("input", block, i) for block in (7, 8) for i in range(10)]
    assert keys[24:] == [("middle", 0, 0)]
    assert [layer.image_stride for layer in layers[:4]] == [16] * 4
    assert {layer.image_stride for layer in layers[4:]} == {32}
    assert {layer.heads for layer in layers} == {5}


def test_sdxl_masking_is_exact_in_every_layer(sdxl, sd15):
    import comfy.sample

    from precise_edit.nodes.capture_cross_attention import CaptureCrossAttention

    mask = torch.zeros(1, 64, 96)
    mask[:, :, :48] = 1.0
    model, _ = inject(sdxl, sd15.clip, "cat", mask)
    model, store, _ = CaptureCrossAttention.execute(
        model, sd15.clip, PROMPT, "cat", "all", "all", 0.0, 1.0, "positive"
    ).result
    latent = torch.zeros(1, 4, *LATENT_HW)
    noise = comfy.sample.prepare_noise(latent, 0)
    comfy.sample.sample(
        model, noise, 2, 5.0, "euler", "normal", sdxl_conditioning(1), sdxl_conditioning(2), latent, disable_pbar=True
    )
    assert len(store.layers) == 25
    for name, entry in store.layers.items():
        outside = grid_zero(mask, entry.grid)
        assert outside.any() and (~outside).any(), name
        assert torch.all(entry.mean[0, outside][:, 5] == 0), name
        assert torch.all(entry.mean[0, ~outside][:, 5] > 0), name
