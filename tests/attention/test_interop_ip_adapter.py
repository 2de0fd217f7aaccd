"""Our cross-attention patch beside an IP-Adapter (ComfyUI_IPAdapter_plus, mimicked by ``ip_adapter_stand_in``), in
either order, on the tiny SD1.5 checkpoint (IP-Adapter's 2-tuple block keys) and the tiny SDXL UNet (3-tuple layer
keys, where IP-Adapter calls ``.add`` on the patch it finds)."""

import pytest
import torch
from attention_helpers import PROMPT, capture, encode, grid_zero, inject, left_half_mask, sample
from ip_adapter_stand_in import apply_ip_adapter
from sdxl_helpers import sample_sdxl, sdxl_unet  # noqa: F401 (the fixture sdxl)

ORDERS = ("ip_adapter_first", "ours_first")
# The layers of the tiny models that IP-Adapter's hard-coded keys reach: on SD1.5 the blocks ("input", 1) and
# ("output", 3); on SDXL every input layer (its middle keys name block 1, which ComfyUI never uses).
IP_ADAPTER_LAYERS = {
    "sd15": {("input", 1, 0), ("output", 3, 0)},
    "sdxl": {("input", block, i) for block in (4, 5) for i in range(2)}
    | {("input", block, i) for block in (7, 8) for i in range(10)},
}


@pytest.fixture(params=["sd15", "sdxl"])
def arch(request):
    """The model under test and how to sample it (SD1.5 prompts through its CLIP, SDXL random conditioning)."""
    sd15 = request.getfixturevalue("sd15")
    if request.param == "sd15":
        positive, negative = encode(sd15.clip, PROMPT), encode(sd15.clip, "blurry")
        return request.param, sd15.model, sd15.clip, lambda model: sample(model, positive, negative, steps=3)
    return request.param, request.getfixturevalue("sdxl"), sd15.clip, lambda model: sample_sdxl(model, steps=3)


def combine(model, clip, order: str, mask: torch.Tensor, sdxl: bool):
    """Our token mask on "cat" and the IP-Adapter (active for the first 60 % of sampling), installed in ``order``."""
    if order == "ip_adapter_first":
        with_ip, projections = apply_ip_adapter(model, sdxl, end_at=0.6)
        return inject(with_ip, clip, "cat", mask)[0], projections
    return apply_ip_adapter(inject(model, clip, "cat", mask)[0], sdxl, end_at=0.6)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.slow
def test_ip_adapter_output_is_kept_exactly_beside_a_no_op_token_mask(arch, order):
    name, model, clip, run = arch
    ip_only, _ = apply_ip_adapter(model, name == "sdxl", end_at=0.6)
    reference = run(ip_only)
    assert (reference - run(model)).abs().max() > 1e-2, "the stand-in must change the output visibly"

    combined, projections = combine(model, clip, order, torch.ones(1, 64, 96), name == "sdxl")
    assert (run(combined) - reference).abs().max() <= 1e-5
    assert set(projections.calls) == IP_ADAPTER_LAYERS[name]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.slow
def test_token_mask_and_ip_adapter_both_act_in_either_order(arch, order):
    name, model, clip, run = arch
    mask = left_half_mask()
    ours_only = run(inject(model, clip, "cat", mask)[0])
    ip_only = run(apply_ip_adapter(model, name == "sdxl", end_at=0.6)[0])
    combined, projections = combine(model, clip, order, mask, name == "sdxl")
    edited = run(combined)
    assert (edited - ours_only).abs().max() > 1e-2
    assert (edited - ip_only).abs().max() > 1e-3
    other_order, _ = combine(model, clip, ORDERS[1 - ORDERS.index(order)], mask, name == "sdxl")
    torch.testing.assert_close(edited, run(other_order), atol=1e-5, rtol=1e-5)

    captured, store, _ = capture(combined, clip, "cat")
    projections.calls.clear()
    run(captured)
    assert set(projections.calls) == IP_ADAPTER_LAYERS[name]
    assert store.layers
    for layer, entry in store.layers.items():
        outside = grid_zero(mask, entry.grid)
        assert torch.all(entry.mean[0, outside][:, 5] == 0), layer
        assert torch.all(entry.mean[0, ~outside][:, 5] > 0), layer


@pytest.mark.slow
def test_ip_adapter_chaining_into_our_patch_leaves_the_model_it_cloned_untouched(sdxl, sd15):
    ours = inject(sdxl, sd15.clip, "cat", left_half_mask())[0]
    before = sample_sdxl(ours)
    first = sample_sdxl(apply_ip_adapter(ours, sdxl=True)[0])
    again = sample_sdxl(apply_ip_adapter(ours, sdxl=True)[0])

    assert torch.equal(again, first), "a second IP-Adapter run from the same model must not stack on the first"
    assert torch.equal(sample_sdxl(ours), before)
    replaces = ours.model_options["transformer_options"]["patches_replace"]["attn2"]
    assert all(not patch.added for patch in replaces.values())


def test_a_chained_callback_runs_only_inside_its_sigma_range(comfy):
    """``add(callback, sigma_start=…, sigma_end=…)``: the callback's output is added while σ is in the range."""
    from precise_edit.nodes.attention.attention_effect import CallInfo
    from precise_edit.nodes.attention.cross_attention_patch import CrossAttentionLayer, CrossAttentionPatch
    from precise_edit.nodes.attention.patch_install import CALL_KEY

    patch = CrossAttentionPatch(CrossAttentionLayer(("input", 1, 0), 0, 8), (), None)
    patch.add(
        lambda out, q, k, v, extra_options, shift, **range_: torch.full_like(out, shift),
        sigma_start=2.0,
        sigma_end=1.0,
        shift=3.0,
    )
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, tokens, 320, generator=g) for tokens in (96, 77, 77))

    def output(sigma: float) -> torch.Tensor:
        extra = {"n_heads": 8, "cond_or_uncond": [0, 1], CALL_KEY: CallInfo(sigma, None, {})}
        return patch(q, k, v, extra)

    torch.testing.assert_close(output(1.5) - output(0.5), torch.full((2, 96, 320), 3.0))
    torch.testing.assert_close(output(2.5), output(0.5))
