"""MCDM Edit Mask: diffusers' own DiffEdit ``generate_mask`` (run on the same UNet weights, latent and noise, with
MCDM's guidance inside the UNet it calls) gives the same binary mask; the n noises are independent draws; the mask
is zero when the two prompts agree; it is seeded."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from mcdm_helpers import load_tiny_mcdm, reference_branches, source_image, text_conditioning

SCALES = (3.0, 2.0, 4.0)
MAPS = 4  # the default is 10; 4 independent maps exercise the same averaging at less cost
RATIO = 1.5  # random weights give a flat map: at 3 (1.5 × mean) no cell is edited; at 1.5 (0.75 × mean) some are
SD_DDIM = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
)


@pytest.fixture(scope="module")
def world(comfy, sd15, tmp_path_factory):
    mcdm, unet = load_tiny_mcdm(tmp_path_factory.mktemp("mcdm"))
    return SimpleNamespace(mcdm=mcdm, unet=unet, vae=sd15.vae, image=source_image())


class MCDMGuidedUNet(torch.nn.Module):
    """What diffusers' DiffEdit calls as its UNet: the MCDM-guided ε̃ for the text embedding of each batch item.

    The negative prompt, image embeddings and concat latent of the four branches are fixed; the prompt slot is the
    ``encoder_hidden_states`` diffusers passes (source or target prompt).
    """

    def __init__(self, unet, branches: dict, scales: tuple[float, float, float]) -> None:
        super().__init__()
        self.unet, self.branches, self.scales = unet, branches, scales

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def config(self):
        return self.unet.config

    def _eps(self, sample, t, context, concat):
        n = sample.shape[0]
        inputs = torch.cat([sample, concat.expand(n, -1, -1, -1)], 1)
        return self.unet(inputs, t, encoder_hidden_states=context.expand(n, -1, -1)).sample

    def forward(self, sample, t, encoder_hidden_states, cross_attention_kwargs=None):
        b = self.branches
        tokens = b["all"][0][:, -50:]
        eps = {name: self._eps(sample, t, *b[name]) for name in ("uncond", "img_p", "img_p_concat")}
        full = torch.cat([encoder_hidden_states, tokens.expand(sample.shape[0], -1, -1)], 1)
        eps["all"] = self._eps(sample, t, full, b["all"][1])
        s1, s2, s3 = self.scales
        guided = (
            eps["uncond"]
            + s1 * (eps["img_p"] - eps["uncond"])
            + s2 * (eps["img_p_concat"] - eps["img_p"])
            + s3 * (eps["all"] - eps["img_p_concat"])
        )
        return SimpleNamespace(sample=guided)


def our_mask(world, positive, source, negative, samples=10, seed=0, output="binary", ratio=3.0):
    from precise_edit.nodes.mcdm.nodes_edit import MCDMEditMask

    result = MCDMEditMask.execute(
        world.mcdm, world.vae, world.image, positive, negative, source, *SCALES, samples, 0.5, ratio, output, 0.5, seed
    )
    return result.result[0]


def test_the_binary_mask_is_diffusers_generate_mask_with_mcdm_guidance(world):
    from diffusers import AutoencoderKL, DDIMInverseScheduler, DDIMScheduler
    from diffusers.pipelines.deprecated.stable_diffusion_diffedit.pipeline_stable_diffusion_diffedit import (
        StableDiffusionDiffEditPipeline,
    )

    positive, source, negative = text_conditioning(1), text_conditioning(3), text_conditioning(2)
    branches = reference_branches(world.mcdm, world.vae, world.image, positive, negative)

    class OnCPU(StableDiffusionDiffEditPipeline):
        _execution_device = torch.device("cpu")  # its device lookup expects diffusers models only

    pipe = OnCPU(
        vae=AutoencoderKL(block_out_channels=(32,)),  # never runs: the image given is already a latent
        text_encoder=None,
        tokenizer=None,
        unet=MCDMGuidedUNet(world.unet, branches, SCALES),
        scheduler=DDIMScheduler(**SD_DDIM),
        safety_checker=None,
        feature_extractor=None,
        inverse_scheduler=DDIMInverseScheduler(**SD_DDIM),
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    latent = branches["all"][1]  # 0.18215 · VAE latent: diffusers uses a 4-channel image as the latent itself
    with torch.no_grad():
        expected = pipe.generate_mask(
            image=latent,
            target_prompt_embeds=positive[0][0],
            target_negative_prompt_embeds=positive[0][0],
            source_prompt_embeds=source[0][0],
            source_negative_prompt_embeds=source[0][0],
            num_maps_per_mask=MAPS,
            mask_encode_strength=0.5,
            mask_thresholding_ratio=RATIO,
            num_inference_steps=50,
            # Its own CFG must be a no-op: the "UNet" already returns the MCDM-guided ε̃, so each negative is the
            # prompt itself and ε̃ + g(ε̃ − ε̃) = ε̃. (guidance_scale 1 cannot be used: generate_mask unpacks
            # encode_prompt's (prompt, negative) as (negative, prompt), which without CFG leaves its prompt None.)
            guidance_scale=7.5,
            generator=torch.Generator().manual_seed(123),
            output_type="np",
        )
    expected = torch.from_numpy(expected).float()
    ours = our_mask(world, positive, source, negative, samples=MAPS, seed=123, ratio=RATIO)
    assert ours.shape == (1, 64, 64)
    cells = ours[:, ::8, ::8]
    assert torch.equal(ours, cells.repeat_interleave(8, 1).repeat_interleave(8, 2))
    print(f"edited cells: ours {int(cells.sum())}, diffusers {int(expected.sum())} of 64")
    assert 0 < expected.sum() < expected.numel()
    assert torch.equal(cells, expected)


def test_the_noise_draws_are_independent_and_averaged(world):
    from precise_edit.nodes.mcdm.nodes_edit import edit_difference

    args = (world.mcdm, world.mcdm.model, world.vae, world.image)
    options = {
        "positive": text_conditioning(1),
        "source_prompt": text_conditioning(3),
        "negative": text_conditioning(2),
        "scales": SCALES,
        "strength": 0.5,
        "steps": 50,
    }
    pair = edit_difference(*args, **options, samples=2, generator=torch.Generator().manual_seed(5))
    generator = torch.Generator().manual_seed(5)
    first = edit_difference(*args, **options, samples=1, generator=generator)
    second = edit_difference(*args, **options, samples=1, generator=generator)
    assert (first - second).abs().max() > 1e-3  # a second draw, not the first one reused (the release's quirk)
    torch.testing.assert_close(pair, (first + second) / 2, atol=1e-5, rtol=1e-4)


def test_the_mask_is_zero_when_the_prompts_agree_and_is_seeded(world):
    positive, negative = text_conditioning(1), text_conditioning(2)
    assert torch.count_nonzero(our_mask(world, positive, positive, negative, samples=1, output="soft")) == 0
    source = text_conditioning(3)
    a = our_mask(world, positive, source, negative, samples=1, seed=7, output="soft")
    b = our_mask(world, positive, source, negative, samples=1, seed=7, output="soft")
    c = our_mask(world, positive, source, negative, samples=1, seed=8, output="soft")
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert 0.0 <= a.min() and a.max() <= 1.0 and ((a > 0) & (a < 1)).any()
