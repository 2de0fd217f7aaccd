"""ZONE on instruction DiTs: the Instruction Locator on tiny Qwen-Image(-Edit) and Flux Kontext stand-ins (ComfyUI's
own model classes, 2 joint-attention blocks each, random text conditioning of the length the real encoder gives), a
reference latent appended by ComfyUI's ReferenceLatent node, then Edit Region From Attention, Region-IoU Select and
the FFT Edge Smoother.

The stand-ins' text is random (a full Qwen2.5-VL or T5-XXL is too big for a test), so the text columns the locator
reads are checked against the real tokenizers' layout: Qwen-Image's instruction sits before the template's 5 closing
tokens (here after 20 extra tokens, as Qwen-Image-Edit's vision tokens of the reference image would be), Flux's T5
instruction at the start of 256 tokens.
"""

import pytest
import torch
from dit_helpers import (
    GRID,
    STAND_INS,
    SpyOverride,
    explicit_image_text,
    install_override,
    stand_in_clip,
    token_mask,
)

INSTRUCTION = "make the hat blue"
IMAGE_HW = (48, 80)
"""The source image: a 6 × 10 latent, a 3 × 5 token grid (non-square)."""
REFERENCE_HW = (64, 32)
"""A reference image of another size: an 8 × 4 latent, 4 × 2 reference tokens after the target's 15."""
VISION_TOKENS = 20

FAMILIES = {
    # family: (stand-in, tokenizer, text tokens the model sees, the instruction's columns in them)
    "qwen_image_edit": ("qwen_image", "QwenImageTokenizer", 4 + 5 + VISION_TOKENS, slice(20, 24)),
    "flux_kontext": ("flux", "FluxTokenizer", 256, slice(0, 5)),
}


def tiny_vae(stand_in: str):
    """A random VAE ComfyUI detects from its keys: a Wan 2.1 VAE at width 8 (Qwen-Image's VAE family, 5-d latents)
    or a 16-channel TAESD (ComfyUI's taef1, for Flux)."""
    import comfy.ldm.wan.vae
    import comfy.sd
    import comfy.taesd.taesd

    from harness.tiny_models import init_parameters

    if stand_in == "qwen_image":
        module = comfy.ldm.wan.vae.WanVAE(
            dim=8,
            z_dim=16,
            dim_mult=[1, 2, 4, 4],
            num_res_blocks=2,
            attn_scales=[],
            temperal_downsample=[False, True, True],
            dropout=0.0,
        )
    else:
        module = comfy.taesd.taesd.TAESD(latent_channels=16)
    init_parameters(module, 41)
    return comfy.sd.VAE(sd=module.state_dict())


def source_image() -> torch.Tensor:
    """A 48 × 80 image: a yellow box on blue."""
    image = torch.empty(1, *IMAGE_HW, 3)
    image[:] = torch.tensor([0.23, 0.37, 0.55])
    image[:, 8:32, 16:48] = torch.tensor([0.91, 0.77, 0.28])
    return image


def edit_conditioning(text_tokens: int, seed: int, reference: dict | None) -> list:
    """Random text conditioning with the reference latent appended as ComfyUI's ReferenceLatent node does."""
    from comfy_extras.nodes_edit_model import ReferenceLatent

    from harness.tiny_dit_models import random_conditioning

    conditioning = random_conditioning(text_tokens, seed, guidance=2.5)
    return ReferenceLatent.execute(conditioning, reference).result[0]


def locate(model, tokenizer: str, branches: str = "positive"):
    from precise_edit.nodes.zone.nodes_locate import ZONE_LAYERS, InstructionLocator

    return InstructionLocator.execute(model, stand_in_clip(tokenizer), INSTRUCTION, branches, ZONE_LAYERS).result


def ksample(model, latent: dict, positive: list, negative: list, cfg: float = 2.0) -> dict:
    import nodes

    return nodes.common_ksampler(model, 5, 2, cfg, "euler", "simple", positive, negative, latent)[0]


def recorded_options(model) -> list[dict]:
    """The ``transformer_options`` of every diffusion-model call ``model`` makes, as a list filled while it samples."""
    from comfy.patcher_extension import WrappersMP

    seen: list[dict] = []

    def keep(executor, *args, **kwargs):
        seen.append(next(a for a in args if isinstance(a, dict) and "cond_or_uncond" in a))
        return executor(*args, **kwargs)

    model.add_wrapper_with_key(WrappersMP.DIFFUSION_MODEL, "test", keep)
    return seen


def empty_latent(stand_in: str) -> dict:
    from comfy_extras.nodes_sd3 import EmptySD3LatentImage

    height, width = IMAGE_HW
    latent = EmptySD3LatentImage.execute(width, height, 1).result[0]
    if stand_in == "qwen_image":
        return {"samples": latent["samples"][:, :, None]}
    return latent


RECORDED = {
    **FAMILIES,
    # Flux.2's encoders close the prompt with a template too ([/INST] for Mistral 3) and the model left-pads the text
    # to 512 tokens: the Qwen tokenizer's layout, 9 tokens, stands in for it (a Mistral tokenizer needs its weights)
    "flux2": ("flux2", "QwenImageTokenizer", 512, slice(512 - 9, 512 - 5)),
}
ENCODED_TOKENS = {"flux2": 9}
"""The text encoder's tokens where the model pads them (Flux.2)."""


@pytest.mark.parametrize("family", list(RECORDED))
def test_the_locator_records_the_instructions_columns_on_the_target_tokens_only(comfy, family):
    from precise_edit.nodes.attention.dit_layers import dit_family

    stand_in, tokenizer, text, instruction = RECORDED[family]
    base = STAND_INS[stand_in].model()
    model, store = locate(base, tokenizer)
    spy = SpyOverride()
    install_override(model, spy)
    reference = {"samples": STAND_INS[stand_in].latent((8, 4) if family != "flux2" else (4, 2)) + 0.5}
    positive = edit_conditioning(ENCODED_TOKENS.get(family, text), 1, reference)
    latent = {"samples": STAND_INS[stand_in].latent()}
    ksample(model, latent, positive, positive, cfg=1.0)  # Kontext's guidance-distilled cfg 1

    assert sorted(store.layers) == sorted(block.name for block in dit_family(base).blocks)
    assert store.words == {"start": [0], "end": [1]}
    target, references = GRID[0] * GRID[1], 8
    calls = [c for c in spy.calls if c["q"].shape[2 if c["skip"] else 1] == text + target + references]
    assert len(calls) == 2 * len(store.layers), "every block at both steps, with the reference tokens in the call"
    for index, (name, entry) in enumerate(store.layers.items()):
        assert entry.grid == GRID and entry.count == 2 and entry.mean.shape == (1, target, 2), name
        # the explicit softmax over text, target and reference keys, read on the 15 target queries only
        steps = [explicit_image_text(calls[step * len(store.layers) + index], text, target) for step in (0, 1)]
        probs = torch.stack(steps).mean(0).mean(1)
        expected = torch.stack([probs.sum(-1) - probs[..., instruction].sum(-1), probs[..., instruction].sum(-1)], -1)
        torch.testing.assert_close(entry.mean, expected, rtol=1e-4, atol=1e-6, msg=name)


def confined(model, instruction: slice, text: int, region: torch.Tensor):
    """``model`` with the instruction's attention confined to ``region`` and the rest of the text's to outside it:
    a case whose M_b is known to be the region."""
    from precise_edit.nodes.attention.dit_attention_patch import add_dit_attention_effect
    from precise_edit.nodes.attention.dit_layers import dit_family

    inside = tuple(range(instruction.start, instruction.stop))
    outside = tuple(c for c in range(text) if c not in inside)
    blocks = dit_family(model).blocks
    model = add_dit_attention_effect(model, token_mask(inside, region, text), blocks)
    return add_dit_attention_effect(model, token_mask(outside, 1.0 - region, text), blocks)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_zone_edit_on_a_dit_keeps_every_pixel_outside_the_final_mask(comfy, family):
    import nodes
    from precise_edit.nodes.attention.dit_attention_patch import OVERRIDE_KEY
    from precise_edit.nodes.zone.nodes_composite import FFTEdgeSmoother
    from precise_edit.nodes.zone.nodes_locate import EditRegionFromAttention
    from precise_edit.nodes.zone.nodes_segment import RegionIoUSelect

    stand_in, tokenizer, text, instruction = FAMILIES[family]
    base = STAND_INS[stand_in].model()
    options_before = repr(base.model_options)
    vae = tiny_vae(stand_in)
    original = source_image()
    reference_image = torch.nn.functional.interpolate(original.movedim(-1, 1), REFERENCE_HW).movedim(1, -1)
    reference = nodes.VAEEncode().encode(vae, reference_image)[0]
    assert reference["samples"].shape[-2:] == (8, 4)
    region = torch.zeros(1, *IMAGE_HW)
    region[:, :, :32] = 1.0  # the left two of the five token columns
    model, store = locate(confined(base, instruction, text, region), tokenizer)
    seen_options = recorded_options(model)
    positive = edit_conditioning(text, 1, reference)
    negative = edit_conditioning(text, 2, reference)
    sampled = ksample(model, empty_latent(stand_in), positive, negative)
    edited = nodes.VAEDecode().decode(vae, sampled)[0].reshape(1, *IMAGE_HW, 3)

    rough, _ = EditRegionFromAttention.execute(store, sampled, "custom", 1).result
    assert rough.shape == (1, *IMAGE_HW), "M_b at the target image's size, not the reference's"
    assert rough[:, :, :24].all() and not rough[:, :, 40:].any(), "M_b is the region the instruction attended"
    segments = torch.zeros(4, *IMAGE_HW)
    segments[0, :24, :40], segments[1, :24, 40:], segments[2, 24:, :40], segments[3, 24:, 40:] = 1, 1, 1, 1
    fine, _ = RegionIoUSelect.execute([rough], ["argmax"], [3], [0.5], [0], ["error"], segments=[segments]).result
    assert torch.equal(fine, segments[:1]), "the top-left quarter holds M_b"
    final, composite = FFTEdgeSmoother.execute(original, edited, fine, 4, 200.0, 30.0, 10, 0.6, True).result
    outside = final[0] == 0
    assert outside.any() and not outside.all()
    assert torch.equal(composite[0][outside], original[0][outside]), "every pixel outside M_f* is the original's"
    assert not torch.equal(composite, original)

    assert seen_options and all(OVERRIDE_KEY not in options for options in seen_options)
    assert repr(base.model_options) == options_before and not base.wrappers


def test_bad_models_branches_and_prompts_are_refused_and_nothing_stays_patched(comfy):
    from harness.tiny_dit_models import tiny_lumina2, tiny_sd3
    from precise_edit.nodes.attention.dit_attention_patch import OVERRIDE_KEY

    with pytest.raises(
        ValueError, match=r"does not handle SD3 \(OpenAISignatureMMDITWrapper\).*Qwen-Image-Edit, Flux Kontext, Flux\.2"
    ):
        locate(tiny_sd3(), "SD3Tokenizer")
    with pytest.raises(ValueError, match=r"does not handle Lumina2 \(NextDiT\).*InstructPix2Pix.*Qwen-Image-Edit"):
        locate(tiny_lumina2(), "FluxTokenizer")
    with pytest.raises(ValueError, match="reads the instruction only in its positive branch.*'positive'"):
        locate(STAND_INS["flux"].model(), "FluxTokenizer", branches="null_instruction")

    base = STAND_INS["flux"].model()
    options_before = repr(base.model_options)
    model, _ = locate(base, "FluxTokenizer")
    seen_options = recorded_options(model)
    short = edit_conditioning(4, 1, None)  # a prompt encoded from another text: shorter than the instruction
    with pytest.raises(ValueError, match="the instruction's 5 tokens do not fit the 4 text tokens"):
        ksample(model, empty_latent("flux"), short, short, cfg=1.0)
    assert seen_options and OVERRIDE_KEY not in seen_options[-1]
    assert repr(base.model_options) == options_before and not base.wrappers


def test_the_instructions_span_follows_each_text_encoders_template(comfy):
    from precise_edit.nodes.zone.dit_instruction_attention import InstructionSpan, instruction_span

    assert instruction_span(stand_in_clip("QwenImageTokenizer"), INSTRUCTION) == InstructionSpan(4, None, 5)
    assert instruction_span(stand_in_clip("FluxTokenizer"), INSTRUCTION) == InstructionSpan(5, 0, 1)
    assert InstructionSpan(4, None, 5).columns(29) == slice(20, 24)
    with pytest.raises(ValueError, match="instruction's 4 tokens do not fit the 6 text tokens"):
        InstructionSpan(4, None, 5).columns(6)
    with pytest.raises(ValueError, match="has no tokens"):
        instruction_span(stand_in_clip("QwenImageTokenizer"), "")
