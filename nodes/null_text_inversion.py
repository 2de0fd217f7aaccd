"""PreciseEdit_NullTextInversion: invert a real image's latent into noise plus per-step null-text embeddings."""

import torch

from .comfy_node_api import io
from .epsilon_model import check_epsilon_model
from .identity import Identity
from .identity_token_mask import IdentityTokenMask, identity_token_mask
from .inversion import MODES, NULL_TEXT, check_conditioning, check_latent, invert
from .inverted_prompt import conditioning_difference
from .socket_types import IdentityType, InvertedLatent


def source_prompt(
    clip, source_text: str, identity: Identity | None, positive: list
) -> tuple[str, IdentityTokenMask | None]:
    """The caption of ``positive`` (checked: it must encode to ``positive``) and [I]'s mask in it, if any."""
    if not source_text.strip():
        if identity is not None:
            raise ValueError(
                "source_text: with an identity, give the caption that positive encodes ('a photo of a [I] lady'), "
                "so that the identity token can be found and masked"
            )
        return "", None
    if clip is None:
        raise ValueError("clip: connect the CLIP that encoded positive, to read source_text")
    text = source_text if identity is None else identity.expand(source_text)
    if identity is not None and f"embedding:{identity.tokens[0].embedding_name}" not in text.split():
        raise ValueError(
            f"source_text: the identity's token {identity.tokens[0].placeholder} is not in {source_text!r}"
        )
    encoded = clip.encode_from_tokens_scheduled(clip.tokenize(text))
    reason = conditioning_difference(encoded, positive)
    if reason:
        raise ValueError(f"source_text: {source_text!r} does not encode to the positive conditioning ({reason})")
    return source_text, identity_token_mask(clip, identity, text, "source_text")


class NullTextInversion(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_NullTextInversion",
            display_name="Null-Text Inversion",
            category="Precise Edit/S2Edit",
            description=(
                "Inverts the latent of a real image with deterministic DDIM under the source prompt, then (null-text "
                "mode) optimises the null-text embedding at every step so that sampling back from the inverted noise "
                "with classifier-free guidance reproduces the image (Mokady et al.). The fast modes skip the "
                "optimisation. With an S2Edit identity, the identity token's cross-attention is masked by its object "
                "mask at every step, as in training and editing. Feed the result to Inversion Reconstruct, or to "
                "prompt-to-prompt editing, which check that they replay the prompt it was inverted under."
            ),
            inputs=[
                io.Model.Input(
                    "model", tooltip="An ε-prediction model with a discrete schedule: SD1.x, SD2.x-base, SDXL."
                ),
                io.Conditioning.Input(
                    "positive",
                    tooltip="The source prompt: a caption of the image as it is (with the identity token for S2Edit).",
                ),
                io.Conditioning.Input(
                    "negative",
                    tooltip="The null text whose embedding is optimised: usually CLIP Text Encode of an empty prompt.",
                ),
                io.Latent.Input("latent", tooltip="The source image encoded with VAE Encode; one image."),
                io.Int.Input("steps", default=50, min=1, max=500, tooltip="DDIM steps of inversion and sampling."),
                io.Float.Input(
                    "guidance",
                    default=7.5,
                    min=0.0,
                    max=30.0,
                    step=0.1,
                    tooltip="Classifier-free guidance scale that the reconstruction and the edits will use (fixed "
                    "by the inversion). 7.5: plain null-text inversion (Mokady et al.); S2Edit identity edits: "
                    "3.5-5.5, the paper's best identity/edit trade-off.",
                ),
                io.Int.Input(
                    "inner_steps",
                    default=10,
                    min=0,
                    max=100,
                    tooltip="At most this many Adam iterations on the null embedding per DDIM step (null-text mode).",
                ),
                io.Float.Input(
                    "epsilon",
                    default=1e-5,
                    min=0.0,
                    max=1.0,
                    step=1e-6,
                    round=1e-8,
                    tooltip="Early stop: a step's optimisation ends once its loss is below epsilon + 0.001·step/steps.",
                ),
                io.Combo.Input(
                    "mode",
                    options=list(MODES),
                    default=NULL_TEXT,
                    tooltip="null-text: optimised, faithful, slow. negative-prompt: the source prompt replaces the "
                    "null text (no optimisation). plain DDIM: the negative as given (drifts at high guidance).",
                ),
                io.Clip.Input(
                    "clip",
                    optional=True,
                    tooltip="The CLIP that encoded positive (with the identity's LoRA): reads source_text.",
                ),
                io.String.Input(
                    "source_text",
                    default="",
                    multiline=True,
                    optional=True,
                    tooltip="The caption that positive encodes (S2Edit: with [I]). Checked against positive and kept, "
                    "so that an edit under another prompt is refused by name; needed with an identity.",
                ),
                IdentityType.Input(
                    "identity",
                    optional=True,
                    tooltip="From the S2Edit identity-token trainer: [I]'s cross-attention is masked by its object "
                    "mask at every step (spatial control), as the edit does. Needs clip and source_text.",
                ),
            ],
            outputs=[
                InvertedLatent.Output(
                    display_name="INVERSION",
                    tooltip="The inverted noise, the per-step null-text embeddings, the schedule and the settings.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        model,
        positive: list,
        negative: list,
        latent: dict,
        steps: int,
        guidance: float,
        inner_steps: int,
        epsilon: float,
        mode: str,
        clip=None,
        source_text: str = "",
        identity: Identity | None = None,
    ) -> io.NodeOutput:
        check_epsilon_model(model)
        check_conditioning(positive, "positive", model)
        check_conditioning(negative, "negative", model)
        samples: torch.Tensor = check_latent(latent, model)
        text, mask = source_prompt(clip, source_text, identity, positive)
        inversion = invert(model, positive, negative, samples, steps, guidance, inner_steps, epsilon, mode, text, mask)
        return io.NodeOutput(inversion)
