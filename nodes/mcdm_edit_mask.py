"""PreciseEdit_MCDMEditMask: DiffEdit's editing mask computed on the trained MCDM (paper §3.4).

The mask needs one guided evaluation at a single noise level, so it runs through ``MCDMGuider.sample`` with a
one-step probe sampler: the stock sampling code loads the model, encodes the conditions and runs their hooks, and
the probe evaluates the five distinct branches of the two guided predictions ε̃(p_b) and ε̃(p_a) on the n noised
copies of the source latent in one ``calc_cond_batch`` call.
"""

from __future__ import annotations

from typing import Any

import comfy.model_management
import comfy.samplers
import torch
import torch.nn.functional as F

from ..core.diffedit_mask import diffedit_mask, difference_map, encode_timestep
from ..core.mcdm_guidance import ALL, ALL_SOURCE, IMAGE, IMAGE_CONCAT, UNCOND, mcdm_guidance
from .comfy_node_api import io
from .mcdm_conditioning import check_mcdm_model, encode_source
from .mcdm_guider import MCDMGuider, common_inputs, mcdm_branches, scale_inputs
from .mcdm_model import MCDM

OUTPUTS = ("soft", "binary")


class DiffEditProbe(comfy.samplers.Sampler):
    """A "sampler" that noises the latent to ``sigmas[0]`` and records D = mean |ε̃(p_b) − ε̃(p_a)|."""

    def __init__(self, samples: int, scales: tuple[float, float, float]) -> None:
        self.samples = samples
        self.scales = scales
        self.difference: torch.Tensor | None = None

    def sample(
        self,
        model_wrap: MCDMGuider,
        sigmas: torch.Tensor,
        extra_args: dict,
        callback: Any,
        noise: torch.Tensor,
        latent_image: torch.Tensor,
        denoise_mask: Any,
        disable_pbar: bool,
    ) -> torch.Tensor:
        sigma = sigmas[0]
        x = model_wrap.inner_model.model_sampling.noise_scaling(sigma, noise, latent_image)
        out = model_wrap.branch_predictions(x, sigma.expand(x.shape[0]), extra_args["model_options"])
        shared = (out[UNCOND], out[IMAGE], out[IMAGE_CONCAT])
        # x₀ predictions D̃ = x − σ ε̃ (guidance is affine with unit weight sum), so ε̃ = (x − D̃) / σ.
        target = (x - mcdm_guidance(*shared, out[ALL], *self.scales)) / sigma
        source = (x - mcdm_guidance(*shared, out[ALL_SOURCE], *self.scales)) / sigma
        shape = (self.samples, x.shape[0] // self.samples, *x.shape[1:])
        self.difference = difference_map(target.reshape(shape).float(), source.reshape(shape).float()).cpu()
        return latent_image


def edit_difference(
    mcdm: MCDM,
    model: Any,
    vae: Any,
    image: torch.Tensor,
    positive: list,
    source_prompt: list,
    negative: list,
    scales: tuple[float, float, float],
    samples: int,
    strength: float,
    steps: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """D ``[1, h, w]`` of one source image: n independent noises drawn from ``generator`` (diffusers' order)."""
    source = encode_source(mcdm, vae, image)
    guider = MCDMGuider(model)
    guider.set_mcdm(mcdm_branches(source, positive, negative, source_prompt), source.latent, scales)
    sampling = model.get_model_object("model_sampling")
    sigma = float(sampling.sigma(torch.tensor(float(encode_timestep(steps, strength)))))
    latent = source.latent.repeat(samples, 1, 1, 1)
    noise = torch.randn(latent.shape, generator=generator, dtype=torch.float32)
    probe = DiffEditProbe(samples, scales)
    guider.sample(noise, latent, probe, torch.tensor([sigma, 0.0]), disable_pbar=True)
    return probe.difference


class MCDMEditMask(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_MCDMEditMask",
            display_name="MCDM Edit Mask",
            category="Precise Edit/MCDM",
            description=(
                "DiffEdit on the trained MCDM: where the MCDM-guided noise predictions for the target and the "
                "source prompt differ, averaged over independent noises at half strength. The mask for MCDM "
                "Guider's mask-guided editing (soft like the release, or binary like DiffEdit)."
            ),
            inputs=[
                *common_inputs(),
                io.Conditioning.Input(
                    "source_prompt",
                    tooltip="The source prompt p_a describing the input image; its first 77 tokens are used.",
                ),
                *scale_inputs(),
                io.Int.Input(
                    "samples", default=10, min=1, max=64, tooltip="n: independent noise draws averaged (DiffEdit: 10)."
                ),
                io.Float.Input(
                    "strength",
                    default=0.5,
                    min=0.02,
                    max=1.0,
                    step=0.01,
                    tooltip="Encoding strength: the noise level as a fraction of a 50-step DDIM schedule (0.5: t=481).",
                ),
                io.Float.Input(
                    "ratio",
                    default=3.0,
                    min=0.1,
                    max=20.0,
                    step=0.1,
                    tooltip="Clamp at ratio × mean difference, then divide by it (DiffEdit: 3).",
                ),
                io.Combo.Input(
                    "output",
                    options=list(OUTPUTS),
                    default="soft",
                    tooltip="soft: the clamped map in [0, 1] (released MCDM code); binary: 1 above the threshold.",
                ),
                io.Float.Input(
                    "threshold",
                    default=0.5,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Binary output: 1 where the clamped map exceeds this (DiffEdit: 0.5).",
                ),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFFFFFFFFFF,
                    control_after_generate=True,
                    tooltip="Seed of the noise draws.",
                ),
                io.Model.Input(
                    "model",
                    optional=True,
                    tooltip="The MCDM's UNet after other model patches; defaults to the MCDM's own.",
                ),
            ],
            outputs=[
                io.Mask.Output(
                    display_name="MASK",
                    tooltip="The editing mask at the source image's size (1: edit); each latent cell is an 8×8 block.",
                )
            ],
        )

    @classmethod
    def execute(
        cls,
        mcdm: MCDM,
        vae: Any,
        source_image: torch.Tensor,
        positive: list,
        negative: list,
        source_prompt: list,
        image_scale: float,
        concat_scale: float,
        text_scale: float,
        samples: int,
        strength: float,
        ratio: float,
        output: str,
        threshold: float,
        seed: int,
        model: Any = None,
    ) -> io.NodeOutput:
        model = mcdm.model if model is None else model
        check_mcdm_model(model)
        scales = (image_scale, concat_scale, text_scale)
        generator = torch.Generator().manual_seed(seed)
        differences = []
        for image in source_image.split(1):
            comfy.model_management.throw_exception_if_processing_interrupted()
            with torch.no_grad():
                difference = edit_difference(
                    mcdm, model, vae, image, positive, source_prompt, negative, scales, samples, strength, 50, generator
                )
            differences.append(difference)
        masks = [diffedit_mask(d, ratio, output == "binary", threshold) for d in differences]
        mask = torch.cat(masks)
        size = source_image.shape[1:3]
        return io.NodeOutput(F.interpolate(mask[:, None], size=tuple(size), mode="nearest")[:, 0])
