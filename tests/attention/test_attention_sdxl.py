"""The attention patch on an SDXL-architecture UNet: layers found from the model (transformer depths 2 and 10,
linear projections, 2048-d context) and masking exact in every layer."""

import torch
from attention_helpers import PROMPT, grid_zero, inject
from sdxl_helpers import sample_sdxl, sdxl_unet  # noqa: F401 (the fixture sdxl)


def test_sdxl_layers_are_every_transformer_block_of_the_model(sdxl):
    from precise_edit.nodes.attention.cross_attention_patch import cross_attention_layers

    layers = cross_attention_layers(sdxl)
    keys = [layer.key for layer in layers]
    assert keys[:4] == [("input", 4, 0), ("input", 4, 1), ("input", 5, 0), ("input", 5, 1)]
    assert keys[4:24] == [("input", block, i) for block in (7, 8) for i in range(10)]
    assert keys[24:] == [("middle", 0, 0)]
    assert [layer.image_stride for layer in layers[:4]] == [16] * 4
    assert {layer.image_stride for layer in layers[4:]} == {32}
    assert {layer.heads for layer in layers} == {5}


def test_sdxl_masking_is_exact_in_every_layer(sdxl, sd15):
    from precise_edit.nodes.attention.nodes_attention import CaptureCrossAttention

    mask = torch.zeros(1, 64, 96)
    mask[:, :, :48] = 1.0
    model, _ = inject(sdxl, sd15.clip, "cat", mask)
    model, store, _ = CaptureCrossAttention.execute(
        model, sd15.clip, PROMPT, "cat", "all", "all", 0.0, 1.0, "positive"
    ).result
    sample_sdxl(model)
    assert len(store.layers) == 25
    for name, entry in store.layers.items():
        outside = grid_zero(mask, entry.grid)
        assert outside.any() and (~outside).any(), name
        assert torch.all(entry.mean[0, outside][:, 5] == 0), name
        assert torch.all(entry.mean[0, ~outside][:, 5] > 0), name
