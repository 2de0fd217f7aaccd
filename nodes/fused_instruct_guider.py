"""PreciseEdit_FusedInstructGuider: InstructPix2Pix three-way guidance, optionally fused with MagicBrush (ZONE).

The guider's conds follow ComfyUI's InstructPix2Pix conventions (InstructPixToPixConditioning + DualCFGGuider):
``positive`` = instruction + source image latent, ``middle`` = negative prompt + source image latent,
``negative`` = negative prompt + an all-zero image latent (IP2P's concat_cond without ``concat_latent_image``). At
every model call both models predict the denoised latent for the three branches at the sampler's current latent,
each is guided by ``core.ip2p_guidance`` and the two are blended by ``core.fused_guidance`` (Eq. 5 per model call:
exact for Euler, DDIM and the other samplers that are affine in the predictions; see there).
"""

import comfy.model_patcher
import comfy.patcher_extension
import comfy.samplers
import node_helpers
import torch
from comfy.model_patcher import ModelPatcher

from ..core.fused_guidance import fuse_predictions
from ..core.ip2p_guidance import instruct_pix2pix_guidance
from .comfy_node_api import io
from .ip2p_model import require_instruct_pix2pix

MAGICBRUSH_KEY = "precise_edit.magicbrush"
IMAGE_KEY = "concat_latent_image"


def with_image(conditioning: list, image: torch.Tensor | None) -> list:
    """A copy of ``conditioning`` whose entries carry ``image`` as the IP2P image latent (None: no image, zeros)."""
    out = []
    for embedding, options in conditioning:
        options = options.copy()
        options.pop(IMAGE_KEY, None)
        if image is not None:
            options[IMAGE_KEY] = image
        out.append([embedding, options])
    return out


class FusedInstructGuider(comfy.samplers.CFGGuider):
    """CFGGuider whose prediction is the IP2P-guided denoised latent, blended with MagicBrush's by β."""

    def __init__(
        self,
        model: ModelPatcher,
        magicbrush: ModelPatcher | None,
        text_guidance: float,
        image_guidance: float,
        beta: float,
    ) -> None:
        patcher = model.clone()
        self.magicbrush: ModelPatcher | None = None
        if magicbrush is not None and beta > 0:
            if magicbrush.model is model.model:
                self.magicbrush = magicbrush
            else:
                patcher.set_additional_models(MAGICBRUSH_KEY, [magicbrush])
                self.magicbrush = patcher.get_additional_models_with_key(MAGICBRUSH_KEY)[0]
        super().__init__(patcher)
        self.text_guidance = text_guidance
        self.image_guidance = image_guidance
        self.beta = beta
        self.magicbrush_options: dict = {}

    def set_instruction(self, positive: list, negative: list, image: torch.Tensor) -> None:
        middle = node_helpers.conditioning_set_values(with_image(negative, image), {"prompt_type": "negative"})
        self.inner_set_conds(
            {"positive": with_image(positive, image), "middle": middle, "negative": with_image(negative, None)}
        )

    def inner_sample(self, noise, latent_image, device, sampler, sigmas, *args, **kwargs):
        if self.magicbrush is not None:
            options = comfy.model_patcher.create_model_options_clone(self.magicbrush.model_options)
            transformer_options = options.setdefault("transformer_options", {})
            for name in ("wrappers", "callbacks"):
                comfy.patcher_extension.merge_nested_dicts(
                    transformer_options.setdefault(name, {}), getattr(self.magicbrush, name), copy_dict1=False
                )
            transformer_options["sample_sigmas"] = sigmas
            self.magicbrush_options = options
        return super().inner_sample(noise, latent_image, device, sampler, sigmas, *args, **kwargs)

    def guided(self, base_model, x, timestep, model_options) -> torch.Tensor:
        conds = [self.conds.get("negative"), self.conds.get("middle"), self.conds.get("positive")]
        uncond, image, text = comfy.samplers.calc_cond_batch(base_model, conds, x, timestep, model_options)
        return instruct_pix2pix_guidance(text, image, uncond, self.text_guidance, self.image_guidance)

    def predict_noise(self, x, timestep, model_options={}, seed=None):  # noqa: B006 (ComfyUI's signature)
        ip2p = self.guided(self.inner_model, x, timestep, model_options)
        if self.magicbrush is None:
            return ip2p
        base = self.magicbrush.model
        previous = base.current_patcher
        base.current_patcher = self.magicbrush
        try:
            magicbrush = self.guided(base, x, timestep, self.magicbrush_options)
        finally:
            base.current_patcher = previous
        return fuse_predictions(ip2p, magicbrush, self.beta)


class FusedInstructGuiderNode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_FusedInstructGuider",
            display_name="Fused Instruct Guider (ZONE)",
            category="Precise Edit/ZONE",
            description=(
                "InstructPix2Pix guidance ε = ε(∅,∅) + s_T(ε(text,img) − ε(∅,img)) + s_I(ε(∅,img) − ε(∅,∅)) as a "
                "GUIDER for SamplerCustomAdvanced, optionally fused with MagicBrush as ZONE does: at every model "
                "call the two models' guided predictions are blended (D_ip2p + β D_mb)/(1 + β), from one shared "
                "starting noise, with any sampler."
            ),
            inputs=[
                io.Model.Input(
                    "model", tooltip="InstructPix2Pix model (8 input channels); the Instruction Locator's output."
                ),
                io.Conditioning.Input("positive", tooltip="The instruction, e.g. CLIPTextEncode('make the hat blue')."),
                io.Conditioning.Input("negative", tooltip="The null instruction, usually CLIPTextEncode('')."),
                io.Latent.Input(
                    "image",
                    tooltip="The source image's latent (VAE Encode of the image to edit): the image condition c_I.",
                ),
                io.Float.Input(
                    "text_guidance",
                    default=7.5,
                    min=0.0,
                    max=100.0,
                    step=0.1,
                    round=0.01,
                    tooltip="s_T, how strongly the instruction is followed (ZONE: 7.5).",
                ),
                io.Float.Input(
                    "image_guidance",
                    default=1.5,
                    min=0.0,
                    max=100.0,
                    step=0.05,
                    round=0.01,
                    tooltip="s_I, how close the result stays to the source image (ZONE: 1.5).",
                ),
                io.Float.Input(
                    "beta",
                    default=0.01,
                    min=0.0,
                    max=10.0,
                    step=0.01,
                    tooltip="β, MagicBrush's weight: 0.2 for 'remove' instructions, 0.01 otherwise (released code); "
                    "0 gives plain InstructPix2Pix.",
                ),
                io.Model.Input(
                    "magicbrush",
                    optional=True,
                    tooltip="MagicBrush model (an InstructPix2Pix fine-tune of the same architecture); without it "
                    "the guider is plain InstructPix2Pix.",
                ),
            ],
            outputs=[
                io.Guider.Output(display_name="GUIDER", tooltip="Connect to SamplerCustomAdvanced's guider."),
                io.Latent.Output(
                    display_name="LATENT",
                    tooltip="An all-zero latent of the image's size for SamplerCustomAdvanced's latent_image: "
                    "InstructPix2Pix starts from pure noise.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        model,
        positive: list,
        negative: list,
        image: dict,
        text_guidance: float,
        image_guidance: float,
        beta: float,
        magicbrush=None,
    ) -> io.NodeOutput:
        require_instruct_pix2pix(model)
        if magicbrush is not None:
            require_instruct_pix2pix(magicbrush, "magicbrush")
            if type(magicbrush.model) is not type(model.model):
                raise ValueError(
                    f"magicbrush is a {type(magicbrush.model).__name__} but model is a {type(model.model).__name__}: "
                    "the two models must share one architecture and latent space"
                )
        samples = image["samples"]
        if samples.dim() != 4 or samples.shape[1] != model.model.latent_format.latent_channels:
            raise ValueError(
                f"image must be a {model.model.latent_format.latent_channels}-channel image latent (VAE Encode of the "
                f"image to edit); got samples of shape {tuple(samples.shape)}"
            )
        guider = FusedInstructGuider(model, magicbrush, text_guidance, image_guidance, beta)
        guider.set_instruction(positive, negative, samples)
        return io.NodeOutput(guider, {"samples": torch.zeros_like(samples)})
