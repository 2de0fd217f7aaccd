"""MCDM Guider: its prediction is the paper's multi-condition formula (and Eq. 3 with a mask) over branches built
here by hand and evaluated one by one; all branches go through one batched UNet call per step (4, or 5 with a
mask); it samples with stock samplers; bad inputs are refused with errors that name them."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from mcdm_helpers import load_tiny_mcdm, reference_branches, source_image, text_conditioning

SCALES = (3.0, 2.0, 4.0)


@pytest.fixture(scope="module")
def world(comfy, sd15, tmp_path_factory):
    mcdm, _ = load_tiny_mcdm(tmp_path_factory.mktemp("mcdm"))
    return mcdm, sd15.vae


class Probe:
    """A one-evaluation "sampler": calls the guider at ``sigma`` on x = latent + σ·noise and keeps the output."""

    def __init__(self, sigma: float) -> None:
        self.sigma = sigma

    def sample(self, guider, sigmas, extra_args, callback, noise, latent_image, denoise_mask, disable_pbar):
        self.x = latent_image + self.sigma * noise
        self.out = guider(self.x, torch.full((self.x.shape[0],), self.sigma), **extra_args)
        return latent_image


class Counter:
    """A model_function_wrapper recording the batch size of every UNet call."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def __call__(self, apply_model, args):
        self.batches.append(args["input"].shape[0])
        return apply_model(args["input"], args["timestep"], **args["c"])


def epsilons(mcdm, branches, x, sigma):
    """ε_k = (x − D_k)/σ with each branch's x₀ prediction D_k from its own UNet call."""
    model = mcdm.model.model
    out = {}
    with torch.no_grad():
        for name, (context, concat) in branches.items():
            denoised = model.apply_model(x, torch.tensor([sigma]), c_concat=concat, c_crossattn=context)
            out[name] = (x - denoised) / sigma
    return out


def guided(eps, s1, s2, s3, full="all"):
    return (
        eps["uncond"]
        + s1 * (eps["img_p"] - eps["uncond"])
        + s2 * (eps["img_p_concat"] - eps["img_p"])
        + s3 * (eps[full] - eps["img_p_concat"])
    )


def run_probe(guider, latent, sigma, seed=0):
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(seed))
    probe = Probe(sigma)
    guider.sample(noise, latent, probe, torch.tensor([sigma, 0.0]), disable_pbar=True)
    return probe


def test_the_guided_prediction_is_the_multi_condition_formula(world):
    from precise_edit.nodes.mcdm.nodes_edit import build_guider

    mcdm, vae = world
    image, positive, negative = source_image(), text_conditioning(1), text_conditioning(2)
    guider = build_guider(mcdm, None, vae, image, positive=positive, negative=negative, scales=SCALES)
    sigma = 3.0
    probe = run_probe(guider, torch.zeros(1, 4, 8, 8), sigma)
    eps = epsilons(mcdm, reference_branches(mcdm, vae, image, positive, negative), probe.x, sigma)
    expected = probe.x - sigma * guided(eps, *SCALES)
    error = (probe.out - expected).abs().max().item()
    print(f"guider vs branch-by-branch formula: max error {error:.2e}")
    assert error < 1e-4
    # the image and concat conditions matter in this model, so the formula is not a trivial identity
    assert (eps["img_p_concat"] - eps["img_p"]).abs().max() > 1e-2
    assert (eps["img_p"] - eps["uncond"]).abs().max() > 1e-2


def test_the_mask_guided_prediction_is_equation_3(world):
    from precise_edit.nodes.mcdm.nodes_edit import build_guider

    mcdm, vae = world
    image, positive, negative, source = source_image(), text_conditioning(1), text_conditioning(2), text_conditioning(3)
    cells = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(9))
    mask = F.interpolate(cells[:, None], size=(64, 64), mode="nearest")[:, 0]  # block-constant: exact at 8×8
    guider = build_guider(
        mcdm, None, vae, image, positive=positive, negative=negative, scales=SCALES, source_prompt=source, mask=mask
    )
    sigma = 1.5
    probe = run_probe(guider, torch.zeros(1, 4, 8, 8), sigma, seed=1)
    eps = epsilons(mcdm, reference_branches(mcdm, vae, image, positive, negative, source), probe.x, sigma)
    m = cells[:, None]
    expected_eps = guided(eps, *SCALES) * m + guided(eps, *SCALES, full="all_source") * (1 - m)
    error = (probe.out - (probe.x - sigma * expected_eps)).abs().max().item()
    print(f"mask-guided guider vs Eq. 3: max error {error:.2e}")
    assert error < 1e-4


@pytest.mark.parametrize(("with_mask", "evaluations"), [(False, 4), (True, 5)])
def test_each_step_is_one_batched_unet_call(world, with_mask, evaluations):
    import comfy.samplers

    from precise_edit.nodes.mcdm.nodes_edit import build_guider

    mcdm, vae = world
    mask = torch.ones(1, 64, 64) if with_mask else None
    source = text_conditioning(3) if with_mask else None
    guider = build_guider(
        mcdm,
        None,
        vae,
        source_image(),
        positive=text_conditioning(1),
        negative=text_conditioning(2),
        scales=SCALES,
        source_prompt=source,
        mask=mask,
    )
    counter = Counter()
    guider.model_options = {**guider.model_options, "model_function_wrapper": counter}
    sigmas = torch.tensor([14.6, 4.0, 1.0, 0.0])
    noise = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    out = guider.sample(
        noise, torch.zeros(1, 4, 8, 8), comfy.samplers.sampler_object("euler"), sigmas, disable_pbar=True
    )
    assert out.shape == (1, 4, 8, 8) and torch.isfinite(out).all()
    print(f"mask={with_mask}: UNet calls per step: batch sizes {counter.batches}")
    assert counter.batches == [evaluations] * 3


def test_it_samples_with_multistep_samplers_and_an_all_one_mask_is_the_plain_guidance(world):
    import comfy.samplers

    from precise_edit.nodes.mcdm.nodes_edit import build_guider

    mcdm, vae = world
    image, positive, negative = source_image(), text_conditioning(1), text_conditioning(2)
    sigmas = torch.tensor([14.6, 6.0, 2.0, 0.0])
    noise = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    plain = build_guider(mcdm, None, vae, image, positive=positive, negative=negative, scales=SCALES)
    masked = build_guider(
        mcdm,
        None,
        vae,
        image,
        positive=positive,
        negative=negative,
        scales=SCALES,
        source_prompt=text_conditioning(3),
        mask=torch.ones(1, 9, 9),
    )
    for name in ("uni_pc",):
        sampler = comfy.samplers.sampler_object(name)
        a = plain.sample(noise, torch.zeros(1, 4, 8, 8), sampler, sigmas, disable_pbar=True)
        b = masked.sample(noise, torch.zeros(1, 4, 8, 8), sampler, sigmas, disable_pbar=True)
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)


def test_an_80_word_prompt_is_cut_to_the_77_text_tokens_mcdm_was_trained_on_with_a_warning(world, sd15, monkeypatch):
    import nodes
    from precise_edit.nodes.mcdm import conditioning as mcdm_conditioning
    from precise_edit.nodes.mcdm.nodes_edit import MCDMGuiderNode

    mcdm, vae = world
    words = "a portrait of a smiling woman in a red coat".split() * 8
    (positive,) = nodes.CLIPTextEncode().encode(sd15.clip, " ".join(words))
    (negative,) = nodes.CLIPTextEncode().encode(sd15.clip, "")
    (first_75,) = nodes.CLIPTextEncode().encode(sd15.clip, " ".join(words[:75]))
    assert len(words) == 80 and positive[0][0].shape[1] == 154  # ComfyUI encodes it as two 77-token chunks
    shown = []
    monkeypatch.setattr(mcdm_conditioning, "show_on_node", lambda text, level: shown.append((text, level)))
    guider = MCDMGuiderNode.execute(mcdm, vae, source_image(), positive, negative, *SCALES).args[0]
    context = guider.original_conds["all"][0]["cross_attn"]
    assert context.shape == (1, 77 + 50, 768)
    # the first chunk is the release's truncation: BOS, the first 75 tokens, EOS
    torch.testing.assert_close(context[:, :77], first_75[0][0])
    assert guider.original_conds["uncond"][0]["cross_attn"].shape == (1, 127, 768)
    assert [level for _, level in shown] == [logging.WARNING]
    assert shown[0][0].startswith("MCDM: positive has 154 text tokens") and "only the first 77 are used" in shown[0][0]
    probe = run_probe(guider, torch.zeros(1, 4, 8, 8), 3.0)
    assert torch.isfinite(probe.out).all()


def test_the_adapter_is_the_released_embedding_adapter():
    """MaxPool2d(2) → flatten per channel → Linear(1024, 768); concat with CLIP; Linear(54 → 50) across tokens."""
    from precise_edit.core.mcdm.adapter import MCDMAdapter

    torch.manual_seed(0)
    adapter = MCDMAdapter()
    assert torch.equal(adapter.linear1.weight, torch.eye(50, 54))
    with torch.no_grad():
        adapter.linear1.weight.add_(0.1 * torch.randn(50, 54))
    clip, latent = torch.randn(2, 50, 768), torch.randn(2, 4, 64, 64)
    vae = adapter.vae2clip(torch.nn.MaxPool2d(2)(latent).reshape(2, 4, 1024))
    tokens = torch.cat([clip, vae], 1)
    expected = torch.einsum("od,bdc->boc", adapter.linear1.weight, tokens) + adapter.linear1.bias[None, :, None]
    torch.testing.assert_close(adapter(clip, latent), expected, atol=1e-5, rtol=1e-5)
    assert adapter(clip, torch.randn(2, 4, 48, 80)).shape == (2, 50, 768)
    assert set(adapter.state_dict()) == {"vae2clip.weight", "vae2clip.bias", "linear1.weight", "linear1.bias"}


def test_bad_inputs_are_refused_with_errors_that_name_them(world, sd15):
    import comfy.samplers

    from precise_edit.nodes.mcdm.nodes_edit import build_guider

    mcdm, vae = world
    image, positive, negative = source_image(), text_conditioning(1), text_conditioning(2)
    with pytest.raises(ValueError, match="model: expected the 8-channel MCDM UNet .* 4 input channels"):
        build_guider(mcdm, sd15.model, vae, image, positive=positive, negative=negative, scales=SCALES)
    with pytest.raises(ValueError, match="source_image: 60×64 is not a multiple of 8"):
        build_guider(mcdm, None, vae, source_image(64, 60), positive=positive, negative=negative, scales=SCALES)
    with pytest.raises(ValueError, match="mask: mask-guided editing needs the source_prompt"):
        build_guider(
            mcdm,
            None,
            vae,
            image,
            positive=positive,
            negative=negative,
            scales=SCALES,
            source_prompt=None,
            mask=torch.ones(1, 64, 64),
        )
    with pytest.raises(ValueError, match="mcdm: it has no CLIP vision tower"):
        build_guider(mcdm.with_vision(None), None, vae, image, positive=positive, negative=negative, scales=SCALES)
    guider = build_guider(mcdm, None, vae, image, positive=positive, negative=negative, scales=SCALES)
    with pytest.raises(
        ValueError, match=r"latent: its size \(16, 8\) .* differs from the source image's latent \(8, 8\)"
    ):
        guider.sample(
            torch.zeros(1, 4, 8, 16),
            torch.zeros(1, 4, 8, 16),
            comfy.samplers.sampler_object("euler"),
            torch.tensor([1.0, 0.0]),
        )
