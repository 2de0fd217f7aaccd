"""Which layers prompt-to-prompt's self-attention replacement uses: the official ``att.shape[2] <= 32 ** 2`` rule
(SD1.4 at 512 px) scaled by the model's finest attention grid. On the real SD1.5 and SDXL geometries (UNets built
on the meta device, no weights) and on the tiny stand-ins, at two image sizes each: the chosen layers, the tokens
ComfyUI actually gives each layer, and the attn1 replaces the edit installs."""

from types import SimpleNamespace

import pytest
import torch
from attention_helpers import PROMPT, encode

UNET_BASE = dict(
    image_size=32,
    in_channels=4,
    out_channels=4,
    model_channels=320,
    use_spatial_transformer=True,
    legacy=False,
    use_temporal_attention=False,
    use_temporal_resblock=False,
)
SD15_CONFIG = dict(
    UNET_BASE,
    num_res_blocks=[2, 2, 2, 2],
    channel_mult=[1, 2, 4, 4],
    transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0],
    transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
    transformer_depth_middle=1,
    context_dim=768,
    num_heads=8,
    num_head_channels=-1,
    use_linear_in_transformer=False,
)
SDXL_CONFIG = dict(
    UNET_BASE,
    num_res_blocks=[2, 2, 2],
    channel_mult=[1, 2, 4],
    transformer_depth=[0, 0, 2, 2, 10, 10],
    transformer_depth_output=[0, 0, 0, 2, 2, 2, 10, 10, 10],
    transformer_depth_middle=10,
    context_dim=2048,
    num_heads=-1,
    num_head_channels=64,
    use_linear_in_transformer=True,
    adm_in_channels=2816,
    num_classes="sequential",
)
SD15_COARSE_BLOCKS = [("input", 4), ("input", 5), ("input", 7), ("input", 8), ("middle", 0)] + [
    ("output", block) for block in range(3, 9)
]
"""SD1.5's 32², 16² and 8² layers at 512 px: the official rule replaces these (11 of 16), not the 64² ones."""
SDXL_COARSE_BLOCKS = [("input", 7), ("input", 8), ("middle", 0), ("output", 0), ("output", 1), ("output", 2)]
"""SDXL's 32² layers at 1024 px (10 transformer blocks each: 60 of 70); its 64² layers keep their own attention."""


def meta_unet(config: dict) -> SimpleNamespace:
    """A model with the real UNet's blocks but no weights, enough for the layer enumeration."""
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    unet = UNetModel(**config, device="meta", operations=comfy.ops.disable_weight_init)
    return SimpleNamespace(model=unet, get_model_object=lambda name: {"diffusion_model": unet}[name])


def blocks(layers) -> list[tuple[str, int]]:
    return sorted({layer.key[:2] for layer in layers}, key=lambda b: (["input", "middle", "output"].index(b[0]), b[1]))


@pytest.mark.parametrize(
    ("config", "image_sizes", "layer_count", "expected", "finest_grid"),
    [
        (SD15_CONFIG, [(512, 512), (1024, 768)], 16, SD15_COARSE_BLOCKS, 64),
        (SDXL_CONFIG, [(1024, 1024), (1216, 832)], 70, SDXL_COARSE_BLOCKS, 64),
    ],
    ids=["sd15", "sdxl"],
)
def test_real_geometries_replace_the_official_layers_at_two_image_sizes(
    comfy, config, image_sizes, layer_count, expected, finest_grid
):
    from precise_edit.nodes.attention.cross_attention_patch import cross_attention_layers
    from precise_edit.nodes.attention.layer_choice import grid_tokens
    from precise_edit.nodes.attention.self_attention_patch import self_replace_layers, self_replace_token_limit

    model = meta_unet(config)
    layers = cross_attention_layers(model)
    assert len(layers) == layer_count
    native = image_sizes[0]
    native_latent = (native[0] // 8, native[1] // 8)
    tokens = [grid_tokens(layer, native_latent) for layer in layers]
    # At the model's own size the scaled limit is the official count itself.
    assert max(tokens) == finest_grid**2 and self_replace_token_limit(max(tokens)) == 32**2
    for height, width in image_sizes:
        chosen = self_replace_layers(model, (height // 8, width // 8))
        assert blocks(chosen) == expected, (height, width)
        assert [layer.key for layer in chosen] == [layer.key for layer in layers if layer.key[:2] in expected]
    chosen_at_native = self_replace_layers(model, native_latent)
    assert all(grid_tokens(layer, native_latent) <= 32**2 for layer in chosen_at_native)
    assert all(grid_tokens(layer, native_latent) > 32**2 for layer in layers if layer not in chosen_at_native)
    if config is SDXL_CONFIG:
        assert len(chosen_at_native) == 60


@pytest.fixture(scope="module")
def sdxl(comfy, tiny_models):
    import nodes

    return nodes.UNETLoader().load_unet("tiny-sdxl-unet.safetensors", "default")[0]


def sdxl_conditioning(seed: int, latent_hw: tuple[int, int]) -> list:
    g = torch.Generator().manual_seed(seed)
    height, width = 8 * latent_hw[0], 8 * latent_hw[1]
    pooled = torch.randn(1, 1280, generator=g)
    return [[torch.randn(1, 77, 2048, generator=g), {"pooled_output": pooled, "width": width, "height": height}]]


class TokenRecorder:
    """An attn1 replace that records the number of tokens of each call and computes plain attention."""

    def __init__(self, key: tuple, seen: dict) -> None:
        self.key, self.seen = key, seen

    def __call__(self, q, k, v, extra_options):
        from comfy.ldm.modules.attention import optimized_attention

        self.seen.setdefault(self.key, set()).add(q.shape[1])
        return optimized_attention(q, k, v, extra_options["n_heads"])


def tokens_seen(model, positive, negative, latent_hw: tuple[int, int]) -> dict[tuple, int]:
    """Sample one step at ``latent_hw`` and return the self-attention token count ComfyUI gave each layer."""
    import comfy.sample

    from precise_edit.nodes.attention.cross_attention_patch import cross_attention_layers

    recording = model.clone()
    seen: dict = {}
    for layer in cross_attention_layers(model):
        recording.set_model_attn1_replace(TokenRecorder(layer.key, seen), *layer.key)
    latent = torch.zeros(1, 4, *latent_hw)
    noise = comfy.sample.prepare_noise(latent, 0)
    comfy.sample.sample(recording, noise, 1, 5.0, "euler", "normal", positive, negative, latent, disable_pbar=True)
    assert all(len(counts) == 1 for counts in seen.values())
    return {key: counts.pop() for key, counts in seen.items()}


TINY_SD15_COARSE = [("input", 3, 0), ("middle", 0, 0), ("output", 0, 0), ("output", 1, 0)]
TINY_SDXL_COARSE = [("input", b, i) for b in (7, 8) for i in range(10)] + [("middle", 0, 0)]


@pytest.mark.parametrize("latent_hw", [(8, 12), (16, 16)])
@pytest.mark.parametrize("model_name", ["sd15", "sdxl"])
def test_tiny_models_replace_the_layers_within_the_scaled_limit_of_the_tokens_comfyui_gives_them(
    request, sd15, model_name, latent_hw
):
    from precise_edit.nodes.attention.self_attention_patch import self_replace_layers, self_replace_token_limit

    if model_name == "sd15":
        model, expected = sd15.model, TINY_SD15_COARSE
        positive, negative = encode(sd15.clip, PROMPT), encode(sd15.clip, "")
    else:
        model, expected = request.getfixturevalue("sdxl"), TINY_SDXL_COARSE
        positive, negative = sdxl_conditioning(1, latent_hw), sdxl_conditioning(2, latent_hw)
    seen = tokens_seen(model, positive, negative, latent_hw)
    limit = self_replace_token_limit(max(seen.values()))
    chosen = [layer.key for layer in self_replace_layers(model, latent_hw)]
    assert chosen == expected
    assert chosen == [key for key, count in seen.items() if count <= limit]
    # The stand-ins' coarser level has a quarter of the finest level's tokens: exactly at the limit.
    assert {seen[key] for key in chosen} == {max(seen.values()) // 4}


def test_the_edit_installs_self_attention_replaces_on_the_coarse_sdxl_layers_only(sd15, sdxl):
    """patch_model passes the inversion's latent size: on the SDXL stand-in, 21 of its 25 layers (the old stride
    rule replaced all 25)."""
    from precise_edit.core.s2edit.ddim_inversion import ddim_schedule
    from precise_edit.nodes.s2edit.prompt_to_prompt_replay import patch_model, plan_edit

    steps = 3
    plan = plan_edit(
        sd15.clip,
        PROMPT,
        "a photo of a dog wearing a red hat",
        steps,
        controller="auto",
        cross_replace=0.0,
        word_cross_replace="",
        self_replace=0.7,
        word_weights="",
        blend_words="",
        blend_threshold=0.3,
        identity=None,
    )
    schedule = ddim_schedule(sdxl.get_model_object("model_sampling").sigmas, steps)
    unmasked = SimpleNamespace(identity_mask=None)
    inversion = SimpleNamespace(schedule=schedule, noise=torch.zeros(1, 4, 16, 24), prompt=unmasked)
    patched, _ = patch_model(sdxl, plan, inversion)
    replaces = patched.model_options["transformer_options"]["patches_replace"]["attn1"]
    assert list(replaces) == TINY_SDXL_COARSE
