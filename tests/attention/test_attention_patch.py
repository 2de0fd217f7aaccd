"""The cross-attention patch inside a real ComfyUI, on the tiny random SD1.5 checkpoint (direct API)."""

import pytest
import torch
from attention_helpers import LATENT_HW, PROMPT, capture, encode, grid_zero, inject, left_half_mask, sample


def test_layers_are_enumerated_from_the_model(sd15):
    from precise_edit.nodes.attention.cross_attention_patch import cross_attention_layers

    layers = cross_attention_layers(sd15.model)
    assert [layer.key for layer in layers] == [
        ("input", 1, 0),
        ("input", 3, 0),
        ("middle", 0, 0),
        ("output", 0, 0),
        ("output", 1, 0),
        ("output", 2, 0),
        ("output", 3, 0),
    ]
    assert [layer.image_stride for layer in layers] == [8, 16, 16, 16, 16, 8, 8]
    assert {layer.heads for layer in layers} == {8}


def test_masked_words_get_exactly_zero_attention_outside_the_mask_in_every_layer(sd15):
    from precise_edit.nodes.attention.cross_attention_patch import cross_attention_layers

    mask = left_half_mask()
    model, _ = inject(sd15.model, sd15.clip, "cat", mask)
    model, store, _ = capture(model, sd15.clip, "cat, hat")
    sample(model, encode(sd15.clip, PROMPT), encode(sd15.clip, "blurry"))
    assert sorted(store.layers) == sorted(layer.name for layer in cross_attention_layers(sd15.model))
    cat, hat = store.words["cat"], store.words["hat"]
    assert cat == [5] and hat == [9]
    for name, entry in store.layers.items():
        outside = grid_zero(mask, entry.grid)
        assert entry.count == 3, name
        assert torch.all(entry.mean[0, outside][:, cat] == 0), name
        assert torch.all(entry.mean[0, ~outside][:, cat] > 0), name
        assert torch.all(entry.mean[0, outside][:, hat] > 0), name


def test_all_ones_mask_samples_exactly_like_stock(sd15):
    positive, negative = encode(sd15.clip, PROMPT), encode(sd15.clip, "blurry")
    stock = sample(sd15.model, positive, negative)
    patched, _ = inject(sd15.model, sd15.clip, "cat", torch.ones(1, 64, 96))
    assert (sample(patched, positive, negative) - stock).abs().max() <= 1e-5


@pytest.mark.slow
def test_patch_leaves_the_input_model_untouched_and_does_not_copy_tensors(sd15):
    positive, negative = encode(sd15.clip, PROMPT), encode(sd15.clip, "blurry")
    before = sample(sd15.model, positive, negative)
    options_before = repr(sd15.model.model_options)
    patched, _ = inject(sd15.model, sd15.clip, "cat", left_half_mask())
    edited = sample(patched, positive, negative)
    assert (edited - before).abs().max() > 1e-3
    assert repr(sd15.model.model_options) == options_before
    assert not sd15.model.wrappers
    assert torch.equal(sample(sd15.model, positive, negative), before)

    replaces = patched.model_options["transformer_options"]["patches_replace"]["attn2"]
    cloned = patched.clone().model_options["transformer_options"]["patches_replace"]["attn2"]
    for key, patch in replaces.items():
        assert cloned[key] is not patch, "each clone holds its own patch object, which another pack may add to"
        assert cloned[key].effects is patch.effects
        assert cloned[key].effects[0].mask.data_ptr() == patch.effects[0].mask.data_ptr()


@pytest.mark.slow
def test_two_injectors_compose(sd15):
    left, top = left_half_mask(), torch.zeros(1, 64, 96)
    top[:, :32] = 1.0
    model, _ = inject(sd15.model, sd15.clip, "cat", left)
    model, _ = inject(model, sd15.clip, "hat", top)
    model, store, _ = capture(model, sd15.clip, "cat, hat")
    sample(model, encode(sd15.clip, PROMPT), encode(sd15.clip, "blurry"))
    for entry in store.layers.values():
        assert torch.all(entry.mean[0, grid_zero(left, entry.grid)][:, 5] == 0)
        assert torch.all(entry.mean[0, grid_zero(top, entry.grid)][:, 9] == 0)
        assert torch.all(entry.mean[0, ~grid_zero(top, entry.grid)][:, 9] > 0)


def layer_call_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
    """q, k, v and extra_options of one call of the ("input", 1, 0) layer: two prompts, an 8×12 token grid."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, tokens, 320, generator=g) for tokens in (96, 77, 77))
    extra = {
        "n_heads": 8,
        "cond_or_uncond": [0, 1],
        "sigmas": torch.tensor([1.0, 1.0]),
        "activations_shape": [2, 320, 8, 12],
    }
    return q, k, v, extra


def install_foreign_replace(model, scale: float):
    """An attn2 replace of another pack (IP-Adapter style): its own attention on every layer."""
    from comfy.ldm.modules.attention import optimized_attention

    from precise_edit.nodes.attention.cross_attention_patch import cross_attention_layers

    def foreign(q, k, v, extra_options):
        return optimized_attention(q, k, v, extra_options["n_heads"]) * scale

    patched = model.clone()
    for layer in cross_attention_layers(model):
        patched.set_model_attn2_replace(foreign, *layer.key[:2])
    return patched, foreign


@pytest.mark.slow
def test_injector_after_another_attn2_replace_keeps_both_effects(sd15):
    positive, negative = encode(sd15.clip, PROMPT), encode(sd15.clip, "blurry")
    foreign_model, foreign = install_foreign_replace(sd15.model, 0.5)
    foreign_only = sample(foreign_model, positive, negative)
    assert (foreign_only - sample(sd15.model, positive, negative)).abs().max() > 1e-3

    ones, _ = inject(foreign_model, sd15.clip, "cat", torch.ones(1, 64, 96))
    assert torch.equal(sample(ones, positive, negative), foreign_only)
    masked, _ = inject(foreign_model, sd15.clip, "cat", left_half_mask())
    patch = masked.model_options["transformer_options"]["patches_replace"]["attn2"][("input", 1, 0)]
    assert patch.previous is None and patch.block_replace is foreign

    from precise_edit.core.attention.cross_attention import attention_probabilities, output_correction
    from precise_edit.core.attention.token_mask import mask_token_probabilities

    q, k, v, extra = layer_call_inputs()
    probs = attention_probabilities(q, k, 8)
    grid_mask = torch.zeros(2, 96)
    grid_mask[:, :] = (torch.arange(96) % 12 < 6).float()
    expected = foreign(q, k, v, extra) + output_correction(
        mask_token_probabilities(probs, torch.tensor([5]), grid_mask), probs, v, torch.tensor([5])
    )
    torch.testing.assert_close(patch(q, k, v, extra), expected, atol=1e-5, rtol=1e-5)


def one_step_positive_maps(model, guider_kind: str, sd15) -> torch.Tensor:
    import comfy.sample
    import comfy.samplers
    from comfy_extras.nodes_custom_sampler import Guider_DualCFG

    positive, negative = encode(sd15.clip, PROMPT), encode(sd15.clip, "text, watermark, blurry")
    model, store, _ = capture(model, sd15.clip, "cat", layers="1_8")
    if guider_kind == "cfg":
        guider = comfy.samplers.CFGGuider(model)
        guider.set_conds(positive, negative)
        guider.set_cfg(5.0)
    else:
        guider = Guider_DualCFG(model)
        guider.set_conds(positive, encode(sd15.clip, "a photo"), negative)
        guider.set_cfg(5.0, 2.0)
    latent = torch.zeros(1, 4, *LATENT_HW)
    sigmas = model.get_model_object("model_sampling").sigmas[-1:].flip(0)
    sigmas = torch.cat([sigmas, torch.zeros(1)])
    noise = comfy.sample.prepare_noise(latent, 3)
    guider.sample(noise, latent, comfy.samplers.sampler_object("euler"), sigmas, disable_pbar=True, seed=3)
    return torch.stack([entry.mean for entry in store.layers.values()])


@pytest.mark.slow
def test_the_positive_prompt_is_found_whatever_its_chunk_index(sd15):
    """Guider_DualCFG batches [negative, middle, positive]: chunk 0 is the negative prompt there."""
    with_cfg = one_step_positive_maps(sd15.model, "cfg", sd15)
    with_dual = one_step_positive_maps(sd15.model, "dual", sd15)
    torch.testing.assert_close(with_dual, with_cfg, atol=1e-6, rtol=1e-5)


def test_target_and_conditioning_choose_the_masked_prompt(sd15):
    mask = left_half_mask()
    positive, negative = encode(sd15.clip, PROMPT), encode(sd15.clip, PROMPT)

    def positive_cat_maps(model, positive_cond) -> list[torch.Tensor]:
        model, store, _ = capture(model, sd15.clip, "cat")
        sample(model, positive_cond, negative, steps=1)
        return [entry.mean[0, grid_zero(mask, entry.grid)][:, 5] for entry in store.layers.values()]

    negative_only, _ = inject(sd15.model, sd15.clip, "cat", mask, target="negative")
    assert all(torch.all(m > 0) for m in positive_cat_maps(negative_only, positive))

    from precise_edit.nodes.attention.nodes_attention import AttentionMaskInjector

    tagged_model, tagged_positive = AttentionMaskInjector.execute(
        sd15.model, sd15.clip, PROMPT, "cat", mask, 1.0, 0.0, 1.0, "negative", False, conditioning=positive
    ).result
    assert all(torch.all(m == 0) for m in positive_cat_maps(tagged_model, tagged_positive))
    assert all(torch.all(m > 0) for m in positive_cat_maps(tagged_model, positive))


def test_step_range_limits_the_masking(sd15):
    mask = left_half_mask()
    model, _ = inject(sd15.model, sd15.clip, "cat", mask, start_percent=0.5, end_percent=1.0)
    model, store, _ = capture(model, sd15.clip, "cat", end_percent=0.3)
    sample(model, encode(sd15.clip, PROMPT), encode(sd15.clip, "blurry"), steps=4)
    for entry in store.layers.values():
        assert torch.all(entry.mean[0, grid_zero(mask, entry.grid)][:, 5] > 0)


def test_a_patch_first_run_under_inference_mode_still_works_when_gradients_are_recorded(sd15):
    """ComfyUI samples under inference mode; null-text inversion and training later record gradients through the
    same patched model, so nothing the patch caches may be an inference tensor."""
    mask = left_half_mask()
    model, _ = inject(sd15.model, sd15.clip, "cat", mask)
    model, store, _ = capture(model, sd15.clip, "cat")
    patch = model.model_options["transformer_options"]["patches_replace"]["attn2"][("input", 1, 0)]
    q, k, v, extra = layer_call_inputs()
    with torch.inference_mode():
        patch(q, k, v, extra)
    with torch.enable_grad():
        q_grad = q.clone().requires_grad_()
        patch(q_grad, k, v, extra).square().sum().backward()
    assert q_grad.grad is not None and torch.isfinite(q_grad.grad).all()
    assert store.layers["input_1_0"].count == 2 and not store.layers["input_1_0"].mean.requires_grad
