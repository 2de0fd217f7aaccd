"""MCDM's edit: the self-generated edit mask and the multi-condition guider.

PreciseEdit_MCDMEditMask: DiffEdit's editing mask computed on the trained MCDM (paper §3.4).

The mask needs one guided evaluation at a single noise level, so it runs through ``MCDMGuider.sample`` with a
one-step probe sampler: the stock sampling code loads the model, encodes the conditions and runs their hooks, and
the probe evaluates the five distinct branches of the two guided predictions ε̃(p_b) and ε̃(p_a) on the n noised
copies of the source latent in one ``calc_cond_batch`` call.

PreciseEdit_MCDMGuider: MCDM's multi-condition guidance (and Eq. 3 mask guidance) as a GUIDER for any sampler.

``MCDMGuider`` is a ``comfy.samplers.CFGGuider``: the stock code prepares the model, the conditions and the hooks;
``predict_noise`` evaluates all branches in one ``calc_cond_batch`` call (ComfyUI batches them into as few UNet calls
as memory allows: one on a normal GPU) and combines them with ``core.mcdm.guidance``.
"""

from __future__ import annotations

from typing import Any

import comfy.model_management
import comfy.samplers
import torch
import torch.nn.functional as F

from ...core.masks.mask_stack import as_mask_batch
from ...core.mcdm.diffedit_mask import diffedit_mask, difference_map, encode_timestep
from ...core.mcdm.guidance import (
    ALL,
    ALL_SOURCE,
    IMAGE,
    IMAGE_CONCAT,
    MASKED_BRANCHES,
    UNCOND,
    masked_mcdm_guidance,
    mcdm_guidance,
)
from ..common.comfy_node_api import io
from ..common.socket_types import MCDMType
from .conditioning import (
    SourceEmbedding,
    branch_conditioning,
    check_mcdm_model,
    encode_source,
    trained_text_length,
)
from .model_file import MCDM

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
        s1, s2, s3 = self.scales
        target = (x - mcdm_guidance(*shared, out[ALL], s1=s1, s2=s2, s3=s3)) / sigma
        source = (x - mcdm_guidance(*shared, out[ALL_SOURCE], s1=s1, s2=s2, s3=s3)) / sigma
        shape = (self.samples, x.shape[0] // self.samples, *x.shape[1:])
        self.difference = difference_map(target.reshape(shape).float(), source.reshape(shape).float()).cpu()
        return latent_image


def edit_difference(
    mcdm: MCDM,
    model: Any,
    vae: Any,
    image: torch.Tensor,
    *,
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
                    mcdm,
                    model,
                    vae,
                    image,
                    positive=positive,
                    source_prompt=source_prompt,
                    negative=negative,
                    scales=scales,
                    samples=samples,
                    strength=strength,
                    steps=50,
                    generator=generator,
                )
            differences.append(difference)
        masks = [diffedit_mask(d, ratio, output == "binary", threshold) for d in differences]
        mask = torch.cat(masks)
        size = source_image.shape[1:3]
        return io.NodeOutput(F.interpolate(mask[:, None], size=tuple(size), mode="nearest")[:, 0])


def mcdm_branches(
    source: SourceEmbedding, positive: list, negative: list, source_prompt: list | None = None
) -> dict[str, list]:
    """The CONDITIONING of each branch (Eq. 1 ordering of the release: uncond, all, img_p, img_p_concat); prompts
    are cut to the 77 text tokens MCDM was trained with."""
    positive, negative = trained_text_length(positive, "positive"), trained_text_length(negative, "negative")
    if source_prompt is not None:
        source_prompt = trained_text_length(source_prompt, "source_prompt")
    branches = {
        UNCOND: branch_conditioning(negative, source.uncond_tokens, None, "negative"),
        ALL: branch_conditioning(positive, source.tokens, source.latent, "positive"),
        IMAGE: branch_conditioning(negative, source.tokens, None, "negative"),
        IMAGE_CONCAT: branch_conditioning(negative, source.tokens, source.latent, "negative"),
    }
    if source_prompt is not None:
        branches[ALL_SOURCE] = branch_conditioning(source_prompt, source.tokens, source.latent, "positive")
    return branches


def latent_mask(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """MASK ``[B, H, W]`` → ``[B or 1, 1, h, w]`` at the latent's size (bilinear), on x's device and dtype."""
    if mask.shape[0] not in (1, x.shape[0]):
        raise ValueError(f"mask: a batch of {mask.shape[0]} masks for a batch of {x.shape[0]} latents")
    resized = F.interpolate(mask[:, None].float(), size=x.shape[-2:], mode="bilinear", align_corners=False)
    return resized.to(x)


class MCDMGuider(comfy.samplers.CFGGuider):
    """ε̃ = ε_u + s1 (ε_imgp − ε_u) + s2 (ε_imgpc − ε_imgp) + s3 (ε_all − ε_imgpc); with a mask, Eq. 3."""

    def set_mcdm(
        self,
        branches: dict[str, list],
        source_latent: torch.Tensor,
        scales: tuple[float, float, float],
        mask: torch.Tensor | None = None,
    ) -> None:
        if mask is not None and ALL_SOURCE not in branches:
            raise ValueError("mask: mask-guided editing needs the source_prompt conditioning (p_a outside the mask)")
        self.inner_set_conds(branches)
        self.source_latent_shape = tuple(source_latent.shape[-2:])
        self.scales = scales
        self.mask = mask

    def branch_predictions(self, x: torch.Tensor, timestep: torch.Tensor, model_options: dict) -> dict:
        """Every branch's prediction (x₀ space, as ComfyUI's model returns it) from one calc_cond_batch call."""
        names = [name for name in MASKED_BRANCHES if name in self.conds]
        outputs = comfy.samplers.calc_cond_batch(
            self.inner_model, [self.conds[name] for name in names], x, timestep, model_options
        )
        return dict(zip(names, outputs, strict=True))

    def predict_noise(self, x: torch.Tensor, timestep: torch.Tensor, model_options: dict = {}, seed: Any = None):  # noqa: B006 (ComfyUI's signature)
        out = self.branch_predictions(x, timestep, model_options)
        shared = (out[UNCOND], out[IMAGE], out[IMAGE_CONCAT])
        s1, s2, s3 = self.scales
        if self.mask is None:
            return mcdm_guidance(*shared, out[ALL], s1=s1, s2=s2, s3=s3)
        return masked_mcdm_guidance(
            *shared,
            full_target=out[ALL],
            full_source=out[ALL_SOURCE],
            mask=latent_mask(self.mask, x),
            s1=s1,
            s2=s2,
            s3=s3,
        )

    def outer_sample(self, noise: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if tuple(noise.shape[-2:]) != self.source_latent_shape:
            raise ValueError(
                f"latent: its size {tuple(noise.shape[-2:])[::-1]} (w×h, latent pixels) differs from the source "
                f"image's latent {self.source_latent_shape[::-1]}; MCDM edits at the source image's size "
                "(encode the source image with VAE Encode, or use an Empty Latent of the same size)"
            )
        return super().outer_sample(noise, *args, **kwargs)


def build_guider(
    mcdm: MCDM,
    model: Any,
    vae: Any,
    source_image: torch.Tensor,
    *,
    positive: list,
    negative: list,
    scales: tuple[float, float, float],
    source_prompt: list | None = None,
    mask: torch.Tensor | None = None,
) -> MCDMGuider:
    model = mcdm.model if model is None else model
    check_mcdm_model(model)
    source = encode_source(mcdm, vae, source_image)
    if mask is not None:
        mask = as_mask_batch(mask, "mask").float().clamp(0.0, 1.0)
        if torch.isnan(mask).any():
            raise ValueError("mask contains NaN values")
    guider = MCDMGuider(model)
    branches = mcdm_branches(source, positive, negative, source_prompt if mask is not None else None)
    guider.set_mcdm(branches, source.latent, scales, mask)
    return guider


def scale_inputs() -> list:
    return [
        io.Float.Input(
            "image_scale",
            default=3.0,
            min=0.0,
            max=30.0,
            step=0.1,
            tooltip="s1: guidance of the image embedding (CLIP + VAE tokens of the source image). Release: 3.",
        ),
        io.Float.Input(
            "concat_scale",
            default=2.0,
            min=0.0,
            max=30.0,
            step=0.1,
            tooltip="s2: guidance of the concatenated source latent (layout and identity). Release: 2.",
        ),
        io.Float.Input(
            "text_scale",
            default=4.0,
            min=0.0,
            max=30.0,
            step=0.1,
            tooltip="s3: guidance of the target prompt (the edit). Release: 4.",
        ),
    ]


def common_inputs() -> list:
    return [
        MCDMType.Input("mcdm", tooltip="The MCDM (MCDM Loader or MCDM Trainer), with its CLIP vision tower."),
        io.Vae.Input("vae", tooltip="The SD1.x VAE the MCDM was trained with; encodes the source image."),
        io.Image.Input(
            "source_image",
            tooltip="The image to edit (x_A); width and height must be multiples of 8. The edit has its size.",
        ),
        io.Conditioning.Input(
            "positive",
            tooltip="The target prompt p_b (e.g. 'a man, santa claus costume'). Its first 77 tokens are used, as "
            "MCDM was trained; a longer prompt is cut with a warning.",
        ),
        io.Conditioning.Input(
            "negative",
            tooltip="The negative prompt of the unconditional branches (often empty); first 77 tokens.",
        ),
    ]


class MCDMGuiderNode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_MCDMGuider",
            display_name="MCDM Guider",
            category="Precise Edit/MCDM",
            description=(
                "Multi-condition guidance of MCDM for SamplerCustomAdvanced: image embedding, concatenated source "
                "latent and text, each with its own scale (4 branches in one batched UNet call). With a mask and "
                "the source prompt, edits inside the mask and keeps the source outside it (paper Eq. 3, 5 branches)."
            ),
            inputs=[
                *common_inputs(),
                *scale_inputs(),
                io.Conditioning.Input(
                    "source_prompt",
                    optional=True,
                    tooltip="The source prompt p_a (e.g. 'a man'), used outside the mask; needed with a mask only. "
                    "First 77 tokens.",
                ),
                io.Mask.Input(
                    "mask",
                    optional=True,
                    tooltip="Where to edit (1) and where to keep the source (0), e.g. from MCDM Edit Mask; any size, "
                    "resized to the latent.",
                ),
                io.Model.Input(
                    "model",
                    optional=True,
                    tooltip="The MCDM's UNet after other model patches (LoRA, attention); defaults to the MCDM's own.",
                ),
            ],
            outputs=[io.Guider.Output(tooltip="The MCDM guider for SamplerCustomAdvanced.")],
        )

    @classmethod
    def execute(
        cls,
        mcdm: MCDM,
        vae: Any,
        source_image: torch.Tensor,
        positive: list,
        negative: list,
        image_scale: float,
        concat_scale: float,
        text_scale: float,
        source_prompt: list | None = None,
        mask: torch.Tensor | None = None,
        model: Any = None,
    ) -> io.NodeOutput:
        scales = (image_scale, concat_scale, text_scale)
        guider = build_guider(
            mcdm,
            model,
            vae,
            source_image,
            positive=positive,
            negative=negative,
            scales=scales,
            source_prompt=source_prompt,
            mask=mask,
        )
        return io.NodeOutput(guider)


NODES = [MCDMEditMask, MCDMGuiderNode]
