"""Our DDIM inversion of a latent on the tiny SD1.5 model, run through the node's own machinery (prepared model,
calc_cond_batch, σ-space steps), against diffusers' DDIMInverseScheduler driving the same UNet converted to
diffusers, step by step."""

import pytest
import torch
from attention_helpers import LATENT_HW, PROMPT, encode
from diffusers_unet import SD_DDIM_SCHEDULER, to_diffusers_unet

from precise_edit.core.s2edit.ddim_inversion import ddim_invert, ddim_schedule, to_variance_preserving

STEPS = 4
TOLERANCE = 1e-4


@pytest.mark.slow
def test_inversion_trajectory_and_node_noise_match_diffusers_ddim_inverse_scheduler(sd15):
    from diffusers import DDIMInverseScheduler

    from precise_edit.nodes.common.prepared_model import GuiderNoisePredictor, run_prepared
    from precise_edit.nodes.s2edit.inversion import PLAIN_DDIM, invert

    model, scale = sd15.model, sd15.model.model.latent_format.scale_factor
    positive, negative = encode(sd15.clip, PROMPT), encode(sd15.clip, "")
    source = torch.randn(1, 4, *LATENT_HW, generator=torch.Generator().manual_seed(5)) / scale
    trajectories = []

    def work(guider, model_options: dict, z0: torch.Tensor) -> torch.Tensor:
        trajectories.append(ddim_invert(GuiderNoisePredictor(guider, model_options).conditional, z0, schedule))
        return trajectories[0][-1]

    with torch.inference_mode():
        schedule = ddim_schedule(model.get_model_object("model_sampling").sigmas, STEPS)
        run_prepared(model, positive, negative, source, sigmas=schedule.sampling_sigmas(), work=work)
        inversion = invert(
            model, positive, negative, source, steps=STEPS, guidance=7.5, inner_steps=0, epsilon=0.0, mode=PLAIN_DDIM
        )
    ours = [to_variance_preserving(x, sigma) for x, sigma in zip(trajectories[0], schedule.sigmas, strict=True)]

    scheduler = DDIMInverseScheduler(**SD_DDIM_SCHEDULER)
    scheduler.set_timesteps(STEPS)
    assert scheduler.timesteps.tolist() == schedule.timesteps.tolist()
    unet, context = to_diffusers_unet(model, LATENT_HW[0]), positive[0][0].float()
    theirs = [source * scale]
    with torch.no_grad():
        for t in scheduler.timesteps:
            eps = unet(theirs[-1], t, encoder_hidden_states=context).sample
            theirs.append(scheduler.step(eps, t, theirs[-1]).prev_sample)

    differences = [float((a - b).abs().max()) for a, b in zip(ours, theirs, strict=True)]
    node_noise = to_variance_preserving(inversion.noise * scale, schedule.sigmas[-1])
    node_difference = float((node_noise - theirs[-1]).abs().max())
    print(f"max |z_ours − z_diffusers| per step: {[f'{d:.2e}' for d in differences]}, node x_T: {node_difference:.2e}")
    assert float((theirs[-1] - theirs[0]).abs().max()) > 0.5, "the inversion moved nothing"
    assert max(differences) <= TOLERANCE and node_difference <= TOLERANCE
