"""The DiT attention patch on tiny Flux.1, Flux.2, Qwen-Image and SD3 stand-ins built with ComfyUI's own classes."""

import pytest
import torch
from dit_helpers import (
    GRID,
    POSITIVE_TOKENS,
    STAND_INS,
    SpyOverride,
    conds,
    explicit_image_text,
    install_override,
    recorder,
    sample,
    token_mask,
)

FAMILIES = list(STAND_INS)


def patched_with(model, *effects):
    from precise_edit.nodes.attention.dit_attention_patch import add_dit_attention_effect
    from precise_edit.nodes.attention.dit_layers import dit_family

    blocks = dit_family(model).blocks
    for effect in effects:
        model = add_dit_attention_effect(model, effect, blocks)
    return model


def calls_of_length(spy: SpyOverride, tokens: int) -> list[dict]:
    """The recorded attention calls over a joint sequence of ``tokens`` tokens."""
    return [c for c in spy.calls if c["q"].shape[2 if c["skip"] else 1] == tokens]


def rows_of(call: dict, rows: tuple[int, ...]) -> dict:
    """A recorded call restricted to the batch ``rows`` an effect saw."""
    return {**call, "q": call["q"][list(rows)], "k": call["k"][list(rows)]}


@pytest.mark.parametrize("family", FAMILIES)
def test_blocks_and_family_are_found_from_the_model(comfy, family):
    from precise_edit.nodes.attention.dit_layers import dit_family

    found = dit_family(STAND_INS[family].model())
    kinds = [block.kind for block in found.blocks]
    expected = {"flux": ["double_block", "single_block"], "flux2": ["double_block", "single_block"]}
    assert kinds == expected.get(family, ["double_block", "double_block"])
    assert found.name == {"flux": "Flux.1/Kontext", "flux2": "Flux.2", "qwen_image": "Qwen-Image", "sd3": "SD3"}[family]
    assert {block.heads for block in found.blocks} == {2}


@pytest.mark.parametrize("family", FAMILIES)
def test_inactive_and_read_only_effects_sample_bit_identically_to_stock(comfy, family):
    stand_in = STAND_INS[family]
    model = stand_in.model()
    positive, negative = conds()
    stock = sample(model, stand_in.latent(), positive, negative)
    assert torch.isfinite(stock).all()
    inactive = recorder(sigma_range=(-1.0, -2.0))
    reading = recorder()
    assert torch.equal(sample(patched_with(model, inactive), stand_in.latent(), positive, negative), stock)
    assert not inactive.seen
    assert torch.equal(sample(patched_with(model, reading), stand_in.latent(), positive, negative), stock)
    assert reading.seen


@pytest.mark.parametrize("family", FAMILIES)
def test_effects_see_the_probabilities_of_the_same_call_and_another_packs_override_is_kept(comfy, family):
    stand_in = STAND_INS[family]
    probe = recorder()
    model = patched_with(stand_in.model(), probe)
    spy = SpyOverride()
    install_override(model, spy)
    sample(model, stand_in.latent(), *conds())
    assert model.model_options["transformer_options"]["optimized_attention_override"] is spy
    blocks = len({name for name, *_ in probe.seen})
    tokens = GRID[0] * GRID[1]
    text = stand_in.text(POSITIVE_TOKENS)
    positive_calls = calls_of_length(spy, text + tokens)
    assert len(positive_calls) == len(probe.seen) == blocks * 2, "every block at both steps, theirs called each time"
    for (name, probs, grid, rows), call in zip(probe.seen, positive_calls, strict=True):
        assert grid == GRID
        assert rows == ((1,) if stand_in.padded_text else (0,)), "Flux.2 batches both prompts (padded to 512)"
        expected = explicit_image_text(rows_of(call, rows), text, tokens)
        torch.testing.assert_close(probs, expected, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_mask_confines_a_word_on_a_non_square_latent(comfy, family):
    stand_in = STAND_INS[family]
    mask = torch.zeros(1, 24, 40)
    mask[:, :, :16] = 1.0
    probe = recorder()
    words = (stand_in.column(2), stand_in.column(3))
    text = stand_in.text(POSITIVE_TOKENS)
    model = patched_with(stand_in.model(), token_mask(words, mask, text), probe)
    positive, negative = conds()
    edited = sample(model, stand_in.latent(), positive, negative)
    assert not torch.equal(edited, sample(stand_in.model(), stand_in.latent(), positive, negative))
    outside = torch.ones(GRID, dtype=torch.bool)
    outside[:, :2] = False
    other = stand_in.column(4)
    for name, probs, _, rows in probe.seen:
        image = probs[rows.index(rows[-1])].view(probs.shape[1], *GRID, text)
        assert torch.all(image[:, outside][..., list(words)] == 0), name
        assert torch.all(image[:, ~outside][..., list(words)] > 0), name
        assert torch.all(image[:, outside][..., other] > 0), name


@pytest.mark.parametrize("family", ["flux", "flux2", "qwen_image"])
def test_reference_image_tokens_are_never_target_tokens(comfy, family):
    stand_in = STAND_INS[family]
    reference = stand_in.latent((8, 4) if family != "flux2" else (4, 2)) + 0.5
    positive, negative = conds(reference_latents=[reference])
    probe = recorder()
    model = patched_with(stand_in.model(), probe)
    spy = SpyOverride()
    install_override(model, spy)
    sample(model, stand_in.latent(), positive, negative)
    tokens = GRID[0] * GRID[1]
    reference_tokens = 8
    text = stand_in.text(POSITIVE_TOKENS)
    positive_calls = calls_of_length(spy, text + tokens + reference_tokens)
    assert len(positive_calls) == len(probe.seen) > 0
    for (name, probs, grid, rows), call in zip(probe.seen, positive_calls, strict=True):
        assert grid == GRID and probs.shape[2] == tokens, name
        expected = explicit_image_text(rows_of(call, rows), text, tokens)
        torch.testing.assert_close(probs, expected, rtol=1e-4, atol=1e-6)


def test_nothing_is_left_patched_after_a_run_or_an_error(comfy):
    from comfy.patcher_extension import WrappersMP

    from precise_edit.nodes.attention.dit_attention_patch import OVERRIDE_KEY

    stand_in = STAND_INS["flux"]
    base = stand_in.model()
    options_before = repr(base.model_options)
    failing = recorder()
    failing.apply = lambda probabilities, context: (_ for _ in ()).throw(RuntimeError("effect failed"))
    seen_options = []

    def keep_options(executor, *args, **kwargs):
        seen_options.append(args[7])
        return executor(*args, **kwargs)

    spy = SpyOverride()
    for effect, inner in ((failing, spy), (recorder(), None)):
        model = patched_with(base, effect)
        model.add_wrapper_with_key(WrappersMP.DIFFUSION_MODEL, "test", keep_options)
        if inner is not None:
            install_override(model, inner)
            with pytest.raises(RuntimeError, match="effect failed"):
                sample(model, stand_in.latent(), *conds())
            assert seen_options[-1][OVERRIDE_KEY] is spy, "the other pack's override is restored after the error"
        else:
            sample(model, stand_in.latent(), *conds())
            assert seen_options and all(OVERRIDE_KEY not in options for options in seen_options[1:])
    assert repr(base.model_options) == options_before and not base.wrappers


def test_an_unsupported_family_is_named_with_the_supported_ones(comfy, sd15):
    from precise_edit.nodes.attention.dit_layers import dit_family

    with pytest.raises(ValueError, match=r"UNetModel.*Flux\.1.*Qwen-Image.*SD3"):
        dit_family(sd15.model)


@pytest.mark.parametrize(
    ("family", "name", "heads", "kinds"),
    [
        ("Flux.1", "Flux.1/Kontext", 24, {"double_block", "single_block"}),
        ("Flux.2", "Flux.2", 48, {"double_block", "single_block"}),
        ("Qwen-Image", "Qwen-Image", 24, {"double_block"}),
    ],
)
def test_the_real_widths_detected_by_comfyui_give_the_real_head_counts(comfy, family, name, heads, kinds):
    from harness.tiny_dit_models import detected_on_meta
    from precise_edit.nodes.attention.dit_layers import dit_family

    found = dit_family(detected_on_meta(family))
    assert found.name == name
    assert {block.heads for block in found.blocks} == {heads}
    assert {block.kind for block in found.blocks} == kinds
    assert found.padded_text == (512 if family == "Flux.2" else 0)


@pytest.mark.parametrize("layout", ["heads_first", "heads_first_output", "tokens_first"])
def test_the_override_corrects_every_calling_convention_and_passes_unknown_arguments_through(comfy, layout):
    """Flux and Qwen-Image pass ``[B, H, T, d]`` with ``skip_reshape``, SD3 ``[B, T, H·d]`` (v ``[B, T, H, d]``);
    a kernel may be asked for ``[B, H, T, d]`` outputs; ComfyUI 0.33 adds ``preferred_attention``."""
    from precise_edit.nodes.attention.attention_effect import CallInfo
    from precise_edit.nodes.attention.dit_attention_patch import DiTAttentionPatch, JointAttentionOverride, JointLayout
    from precise_edit.nodes.attention.dit_layers import DiTBlock

    text, grid, reference, heads, dim = 4, (2, 3), 5, 2, 8
    tokens = text + grid[0] * grid[1] + reference
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, heads, tokens, dim, generator=generator) for _ in range(3))
    mask = torch.zeros(1, 16, 24)
    mask[:, :, :8] = 1.0
    effect = token_mask((1,), mask, context_length=text)
    patch = DiTAttentionPatch(DiTBlock("double_block", 0, heads, 2), (effect,), None)
    image = slice(text, text + 6)
    override = JointAttentionOverride(
        patch, JointLayout(text, image, tokens, grid), CallInfo(1.0, None), [(effect, (0,))], 1, None
    )
    seen = {}

    def kernel(q_, k_, v_, heads, **kwargs):
        seen.update(kwargs)
        qh, kh, vh = (
            x if kwargs.get("skip_reshape") else x.reshape(1, tokens, heads, dim).transpose(1, 2) for x in (q_, k_, v_)
        )
        out = torch.softmax(qh @ kh.transpose(-1, -2) * dim**-0.5, dim=-1) @ vh
        return out if kwargs.get("skip_output_reshape") else out.transpose(1, 2).reshape(1, tokens, heads * dim)

    extra = {"preferred_attention": "sage", "_inside_attn_wrapper": True}
    if layout == "tokens_first":
        args = (q.transpose(1, 2).reshape(1, tokens, -1), k.transpose(1, 2).reshape(1, tokens, -1), v.transpose(1, 2))
        out = override(kernel, *args, heads=heads, **extra)
    else:
        options = {"skip_reshape": True, "skip_output_reshape": layout == "heads_first_output"}
        out = override(kernel, q, k, v, heads, **options, **extra)
    assert seen["preferred_attention"] == "sage" and seen["_inside_attn_wrapper"]

    probabilities = torch.softmax(q @ k.transpose(-1, -2) * dim**-0.5, dim=-1)
    outside = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 1.0])
    probabilities[:, :, image, 1] *= 1.0 - outside
    expected = probabilities @ v
    if layout != "heads_first_output":
        expected = expected.transpose(1, 2).reshape(1, tokens, heads * dim)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
