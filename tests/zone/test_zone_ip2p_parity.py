"""Parity with diffusers' StableDiffusionInstructPix2PixPipeline on the tiny InstructPix2Pix UNet converted to a
diffusers UNet2DConditionModel: the same Euler trajectory under three-way guidance, and the same cross-attention
maps recorded by Instruction Locator (null-instruction branches, 1/16-stride layers, mean over heads and steps)."""

import pytest
import torch
from diffusers_unet import SD_DDIM_SCHEDULER, to_diffusers_unet

IP2P = "instruct-pix2pix-00-22000.safetensors"
LATENT_HW = (8, 8)
STEPS = 2
TEXT, IMAGE = 7.5, 1.5


class NullBranchRecorder:
    """diffusers attn2 processor: plain attention, recording the head-mean probabilities of batch items 1 and 2."""

    def __init__(self, sums: dict, name: str) -> None:
        self.sums, self.name = sums, name

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        batch = hidden_states.shape[0]
        q = attn.head_to_batch_dim(attn.to_q(hidden_states))
        k = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
        v = attn.head_to_batch_dim(attn.to_v(encoder_hidden_states))
        probs = attn.get_attention_scores(q, k, None)
        per_prompt = probs.view(batch, attn.heads, *probs.shape[1:])
        total, count = self.sums.get(self.name, (0.0, 0))
        self.sums[self.name] = (total + per_prompt[1:].mean(1).sum(0), count + 2)
        out = attn.batch_to_head_dim(torch.bmm(probs, v))
        return attn.to_out[1](attn.to_out[0](out))


@pytest.fixture(scope="module")
def setup(comfy, tiny_models):
    import nodes

    model, clip = nodes.CheckpointLoaderSimple().load_checkpoint(IP2P)[:2]
    positive = clip.encode_from_tokens_scheduled(clip.tokenize("make the hat blue"))
    negative = clip.encode_from_tokens_scheduled(clip.tokenize(""))
    image = torch.randn(1, 4, *LATENT_HW, generator=torch.Generator().manual_seed(5))
    noise = torch.randn(1, 4, *LATENT_HW, generator=torch.Generator().manual_seed(6))
    return model, clip, positive, negative, image, noise


def diffusers_run(model, positive, negative, image, noise):
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionInstructPix2PixPipeline
    from diffusers.models.attention_processor import AttnProcessor

    unet = to_diffusers_unet(model, LATENT_HW[0])
    levels = len(unet.config.block_out_channels)
    sums: dict = {}
    processors = {}
    for name in unet.attn_processors:
        coarsest = name.startswith((f"down_blocks.{levels - 1}.", "up_blocks.0."))
        processors[name] = NullBranchRecorder(sums, name) if coarsest and "attn2" in name else AttnProcessor()
    unet.set_attn_processor(processors)
    scheduler = EulerDiscreteScheduler(
        **{k: v for k, v in SD_DDIM_SCHEDULER.items() if k not in ("clip_sample", "set_alpha_to_one")},
        timestep_spacing="leading",
    )
    vae = AutoencoderKL(block_out_channels=(32,), latent_channels=4)
    pipe = StableDiffusionInstructPix2PixPipeline(
        vae, None, None, unet, scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    pipe.set_progress_bar_config(disable=True)
    scheduler.set_timesteps(STEPS)
    sigmas = scheduler.sigmas.clone().float()
    start = noise * sigmas[0] / scheduler.init_noise_sigma
    with torch.no_grad():
        latents = pipe(
            image=image,
            prompt_embeds=positive[0][0].float(),
            negative_prompt_embeds=negative[0][0].float(),
            num_inference_steps=STEPS,
            guidance_scale=TEXT,
            image_guidance_scale=IMAGE,
            latents=start,
            output_type="latent",
        ).images
    maps = {name: total / count for name, (total, count) in sorted(sums.items())}
    return latents, sigmas, maps


def test_guidance_and_recorded_attention_match_diffusers_instruct_pix2pix_pipeline(setup, record_property):
    import comfy.samplers

    from precise_edit.nodes.zone.nodes_instruct import FusedInstructGuiderNode
    from precise_edit.nodes.zone.nodes_locate import DEFAULT_BRANCHES, ZONE_LAYERS, InstructionLocator

    model, clip, positive, negative, image, noise = setup
    theirs, sigmas, their_maps = diffusers_run(model, positive, negative, image, noise)

    located, store = InstructionLocator.execute(model, clip, "make the hat blue", DEFAULT_BRANCHES, ZONE_LAYERS).result
    guider, latent = FusedInstructGuiderNode.execute(
        located, positive, negative, {"samples": image}, TEXT, IMAGE, 0.0
    ).result
    sampler = comfy.samplers.sampler_object("euler")
    ours = guider.sample(noise, latent["samples"], sampler, sigmas, disable_pbar=True, seed=0)
    ours = model.model.process_latent_in(ours)

    difference = (ours - theirs).abs().max().item()
    record_property("max_latent_error", difference)
    assert theirs.abs().max() > 0.1
    assert difference <= 1e-4 * theirs.abs().max().item(), f"max |latent ours − diffusers| = {difference:.3g}"

    # one layer per diffusers name, in execution order: the input layer(s), then the output layers (middle excluded)
    assert len(their_maps) == len(store.layers)
    order = sorted(their_maps, key=lambda n: (not n.startswith("down"), n))
    for (name, entry), diffusers_name in zip(store.layers.items(), order, strict=True):
        assert not name.startswith("middle") and entry.grid == (4, 4)
        assert entry.count == STEPS * 2
        reference = their_maps[diffusers_name]
        gap = (entry.mean[0] - reference).abs().max().item()
        record_property(f"max_attention_error_{name}", gap)
        assert gap <= 1e-5, f"{name} vs {diffusers_name}: max |A_ours − A_diffusers| = {gap:.3g}"
