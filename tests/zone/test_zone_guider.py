"""Fused Instruct Guider: plain InstructPix2Pix guidance at β = 0, and Eq. 5 (blend of the two models' steps from one
latent) reproduced by blending per model call, against hand-written Euler and DDIM loops over the raw UNets."""

import math

import pytest
import torch

IP2P = "instruct-pix2pix-00-22000.safetensors"
LATENT = (1, 4, 4, 4)  # a 32 px image: each call of the tiny UNet costs ~1 GFLOP
TEXT, IMAGE = 7.5, 1.5


def load_ip2p():
    import nodes

    return nodes.CheckpointLoaderSimple().load_checkpoint(IP2P)[:2]


@pytest.fixture(scope="module")
def ip2p(comfy, tiny_models):
    model, clip = load_ip2p()
    positive = clip.encode_from_tokens_scheduled(clip.tokenize("make the hat blue"))
    negative = clip.encode_from_tokens_scheduled(clip.tokenize(""))
    image = torch.randn(LATENT, generator=torch.Generator().manual_seed(1))
    return model, positive, negative, image


@pytest.fixture(scope="module")
def magicbrush(comfy, tiny_models):
    """A second InstructPix2Pix model: the tiny checkpoint loaded again with every UNet weight perturbed."""
    model, _ = load_ip2p()
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for parameter in model.model.diffusion_model.parameters():
            parameter.add_(0.3 * parameter.std().nan_to_num() * torch.randn(parameter.shape, generator=generator))
    return model


def fused_guider(ip2p, beta, magicbrush=None):
    from precise_edit.nodes.zone.nodes_instruct import FusedInstructGuiderNode

    model, positive, negative, image = ip2p
    return FusedInstructGuiderNode.execute(
        model, positive, negative, {"samples": image}, TEXT, IMAGE, beta, magicbrush=magicbrush
    ).result


def sample(guider, sampler: str, sigmas: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    import comfy.samplers

    sampler_object = comfy.samplers.sampler_object(sampler)
    return guider.sample(noise, torch.zeros(LATENT), sampler_object, sigmas, disable_pbar=True, seed=0)


def sigmas_for(model, scheduler: str, steps: int) -> torch.Tensor:
    import comfy.samplers

    return comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), scheduler, steps).cpu()


def guided_denoised(model, x, sigma, positive, negative, image) -> torch.Tensor:
    """IP2P guidance written out over one raw UNet call on [text+img, ∅+img, ∅+∅]."""
    context = torch.cat([positive[0][0], negative[0][0], negative[0][0]])
    concat = torch.cat([image, image, torch.zeros_like(image)])
    with torch.no_grad():
        out = model.model.apply_model(x.repeat(3, 1, 1, 1), sigma.repeat(3), c_concat=concat, c_crossattn=context)
    text, with_image, uncond = out.chunk(3)
    return uncond + TEXT * (text - with_image) + IMAGE * (with_image - uncond)


def euler_step(x, denoised, sigma, sigma_next):
    return x + (sigma_next - sigma) * (x - denoised) / sigma


def ddim_step(x, denoised, sigma, sigma_next):
    """DDIM (η = 0) in variance-preserving form: z = x/√(1+σ²), ᾱ = 1/(1+σ²), back to ComfyUI's x after the step."""
    alpha, alpha_next = 1 / (1 + sigma**2), 1 / (1 + sigma_next**2)
    z = x * alpha.sqrt()
    eps = (z - alpha.sqrt() * denoised) / (1 - alpha).sqrt()
    z_next = alpha_next.sqrt() * denoised + (1 - alpha_next).sqrt() * eps
    return z_next / alpha_next.sqrt()


def two_model_loop(ip2p, magicbrush, beta, step, sigmas, noise) -> tuple[torch.Tensor, float]:
    """Eq. 5 by hand: both models step from the shared latent, the two next latents are blended by β. Also returns
    the largest difference between the two models' steps."""
    model, positive, negative, image = ip2p
    sampling = model.get_model_object("model_sampling")
    start = float(sigmas[0])
    # ComfyUI's start: pure noise in variance-preserving terms at σ_max, noise · σ below it
    x = noise * (math.sqrt(1 + start**2) if math.isclose(start, float(sampling.sigma_max), rel_tol=1e-5) else start)
    spread = 0.0
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:], strict=True):
        s = sigma.reshape(1)
        ours = step(x, guided_denoised(model, x, s, positive, negative, image), sigma, sigma_next)
        theirs = step(x, guided_denoised(magicbrush, x, s, positive, negative, image), sigma, sigma_next)
        spread = max(spread, (ours - theirs).abs().max().item())
        x = (ours + beta * theirs) / (1 + beta)
    return model.model.process_latent_out(x), spread


def test_beta_zero_is_plain_instruct_pix2pix_guidance_as_dual_cfg_guider(ip2p, magicbrush, record_property):
    import comfy_extras.nodes_custom_sampler as custom

    from precise_edit.nodes.zone.nodes_instruct import with_image

    model, positive, negative, image = ip2p
    dual = custom.Guider_DualCFG(model)
    dual.set_conds(with_image(positive, image), with_image(negative, image), negative)
    dual.set_cfg(TEXT, IMAGE)
    sigmas = sigmas_for(model, "normal", 2)
    noise = torch.randn(LATENT, generator=torch.Generator().manual_seed(3))
    reference = sample(dual, "euler", sigmas, noise)
    for mb in (None, magicbrush):
        guider, latent = fused_guider(ip2p, 0.0, mb)
        ours = sample(guider, "euler", sigmas, noise)
        assert (latent["samples"] == 0).all() and latent["samples"].shape == LATENT
        difference = (ours - reference).abs().max().item()
        record_property(f"max_error_against_dual_cfg_{mb is not None}", difference)
        assert difference <= 1e-5 * reference.abs().max().item(), f"max |ours − DualCFGGuider| = {difference:.3g}"
    assert guider.magicbrush is None  # β = 0 never evaluates MagicBrush


@pytest.mark.parametrize(
    ("sampler", "scheduler", "step"), [("euler", "normal", euler_step), ("ddim", "ddim_uniform", ddim_step)]
)
def test_fusion_per_model_call_equals_blending_the_two_models_steps(
    ip2p, magicbrush, sampler, scheduler, step, record_property
):
    model = ip2p[0]
    sigmas = sigmas_for(model, scheduler, 3)
    noise = torch.randn(LATENT, generator=torch.Generator().manual_seed(4))
    guider, _ = fused_guider(ip2p, 0.2, magicbrush)
    ours = sample(guider, sampler, sigmas, noise)
    reference, spread = two_model_loop(ip2p, magicbrush, 0.2, step, sigmas, noise)
    scale = reference.abs().max().item()
    difference = (ours - reference).abs().max().item()
    record_property("max_error_against_hand_loop", difference)
    assert difference <= 1e-4 * scale, (
        f"max |guider − hand-written two-model loop| = {difference:.3g} (scale {scale:.3g})"
    )
    assert spread > 0.05 * scale  # the two models' steps really differ, so the blend is tested


def test_the_input_models_are_left_unchanged(ip2p, magicbrush):
    model = ip2p[0]
    before = (dict(model.additional_models), dict(magicbrush.additional_models), model.model_options.copy())
    guider, _ = fused_guider(ip2p, 0.2, magicbrush)
    sample(guider, "euler", sigmas_for(model, "normal", 1), torch.randn(LATENT))
    assert (dict(model.additional_models), dict(magicbrush.additional_models), model.model_options) == before
    assert guider.model_patcher is not model


def test_bad_inputs_name_the_input(ip2p, sd15):
    from precise_edit.nodes.zone.nodes_instruct import FusedInstructGuiderNode

    model, positive, negative, image = ip2p
    with pytest.raises(ValueError, match="model must be an InstructPix2Pix model .* takes 4 input channels"):
        FusedInstructGuiderNode.execute(sd15.model, positive, negative, {"samples": image}, TEXT, IMAGE, 0.01)
    with pytest.raises(ValueError, match="magicbrush must be an InstructPix2Pix model"):
        FusedInstructGuiderNode.execute(model, positive, negative, {"samples": image}, TEXT, IMAGE, 0.2, sd15.model)
    with pytest.raises(ValueError, match="image must be a 4-channel image latent"):
        FusedInstructGuiderNode.execute(model, positive, negative, {"samples": image[:, :3]}, TEXT, IMAGE, 0.01)
