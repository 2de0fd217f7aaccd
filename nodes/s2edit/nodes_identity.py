"""S2Edit's first stage: learn an identity token from one image (orthogonality loss, spatial control) and write prompts
with it.

PreciseEdit_IdentityTokenTrainer: S2Edit identity fine-tuning, saved as an embedding and a LoRA.

PreciseEdit_OrthogonalityLoss: S2Edit's semantic control term, λ |cos(e_P, e_[I])|, and its current value.

PreciseEdit_SpatialControl: S2Edit's spatial control term, A*_[I] = A_[I] ⊙ M_obj, for the identity trainer.

``mask_identity_attention`` applies the same masking at inference: each learned placeholder's cross-attention in
a prompt is multiplied by the token's object mask in every cross-attention layer.

PreciseEdit_IdentityPrompt: write a prompt with an identity's placeholders as text a stock CLIP Text Encode reads.
"""

import math

import comfy.sd
import torch
from comfy.model_patcher import ModelPatcher
from comfy.sd import CLIP
from comfy_execution.graph_utils import ExecutionBlocker

from ...core.files.atomic_file import save_safetensors_atomically
from ...core.s2edit.orthogonality_loss import absolute_cosine
from ..attention.attention_effect import PromptTarget, StepRange
from ..attention.cross_attention_patch import add_cross_attention_effect, cross_attention_layers
from ..attention.prompt_tokens import clip_tokenizer, locate_words
from ..attention.token_mask_effect import TokenMask
from ..common.comfy_node_api import io
from ..common.mask_input import spatial_mask_batch
from ..common.save_names import name_parts
from ..common.socket_types import IdentityType, SemanticControlType, SpatialControlType
from ..common.trainer_progress import TrainerProgress
from .embedding_file import LORAS, check_name, free_stem, save_embedding, save_folder
from .identity import Identity, IdentityToken
from .identity_training import (
    SCHEDULE_CONSTANT,
    SCHEDULE_OPTIONS,
    VECTOR_OPTIONS,
    VECTORS_INPUT,
    VECTORS_OUTPUT,
    SemanticControl,
    SpatialControl,
    StepReport,
    Subject,
    TrainingSettings,
    remove_placeholder,
    train_identity,
)

IDENTITY = "[I]"


ATTRIBUTE = "[A]"


def encode_images(vae, image: torch.Tensor, name: str) -> torch.Tensor:
    if image.dim() != 4 or image.shape[-1] < 3:
        raise ValueError(f"{name}: expected an IMAGE batch [B, H, W, 3], got shape {tuple(image.shape)}")
    return vae.encode(image[..., :3]).clone()


def subject_mask(mask: torch.Tensor | None, image: torch.Tensor, name: str) -> torch.Tensor | None:
    """One ``[1, H, W]`` mask at the image's size, or None."""
    if mask is None:
        return None
    mask = spatial_mask_batch(mask, name)
    if mask.shape[0] != 1:
        raise ValueError(f"{name}: give one object mask for the subject, got a batch of {mask.shape[0]}")
    if tuple(mask.shape[-2:]) != tuple(image.shape[1:3]):
        raise ValueError(
            f"{name}: the mask is {mask.shape[-1]}×{mask.shape[-2]} but the image is {image.shape[2]}×"
            f"{image.shape[1]} (width × height); give the mask at the image's size"
        )
    return mask.clone()


def make_subject(
    vae, image: torch.Tensor, *, prompt: str, noun: str, mask, placeholder: str, embedding_name: str, label: str
) -> Subject:
    if placeholder not in prompt:
        raise ValueError(
            f"{label}prompt: it must contain the placeholder {placeholder}, e.g. 'a photo of a "
            f"{placeholder} lady with glasses'; got {prompt!r}"
        )
    if not noun.strip():
        raise ValueError(f"{label}subject: give the noun of the prompt that names the subject (e.g. 'lady')")
    checked = subject_mask(mask, image, f"{label}mask")
    return Subject(
        placeholder=placeholder,
        embedding_name=embedding_name,
        prompt=prompt,
        noun=noun.strip(),
        latents=encode_images(vae, image, f"{label}image"),
        image_size=(int(image.shape[1]), int(image.shape[2])),
        mask=checked,
    )


def learning_rate_input(name: str, default: float, what: str) -> io.Float.Input:
    return io.Float.Input(name, default=default, min=0.0, max=1.0, step=1e-6, tooltip=f"Adam learning rate of {what}.")


class IdentityTokenTrainer(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_IdentityTokenTrainer",
            display_name="Identity Token Trainer (S2Edit)",
            category="Precise Edit/S2Edit",
            description=(
                "S2Edit identity fine-tuning on one image (or a few): learns the placeholder token [I] of an "
                "enhanced prompt ('a photo of a [I] lady with glasses') together with a LoRA of the UNet (and "
                "optionally the text encoder) with the diffusion reconstruction loss, plus the semantic "
                "(Orthogonality Loss) and spatial (Spatial Control) terms when connected. Saves "
                "models/embeddings/<name>.safetensors (use embedding:<name> in any prompt) and "
                "models/loras/<name>.safetensors (stock Load LoRA). A reference image with an [A] prompt learns an "
                "attribute token jointly, for compositional editing."
            ),
            inputs=[
                io.Model.Input("model", tooltip="SD1.x, SD2.x-base or SDXL (ε-prediction) model to fine-tune."),
                io.Clip.Input("clip", tooltip="The CLIP of the same checkpoint; its embedding folder gets the token."),
                io.Vae.Input("vae", tooltip="Encodes the training image(s) to latents."),
                io.Image.Input("image", tooltip="The source image; a batch of views of the same subject is allowed."),
                io.String.Input(
                    "prompt",
                    default="a photo of a [I] lady with glasses",
                    multiline=True,
                    tooltip="The source prompt with the placeholder [I] where the identity goes.",
                ),
                io.String.Input(
                    "subject",
                    default="lady",
                    tooltip="The noun of the prompt naming the subject: initialises [I] and gives the automatic mask.",
                ),
                io.Int.Input("steps", default=400, min=1, max=100_000, tooltip="Optimiser steps."),
                learning_rate_input("token_learning_rate", 5e-4, "the placeholder embedding(s)"),
                learning_rate_input("unet_learning_rate", 1e-4, "the UNet LoRA (attention projections)"),
                learning_rate_input("text_encoder_learning_rate", 5e-5, "the text-encoder LoRA (when trained)"),
                io.Int.Input("rank", default=4, min=1, max=256, tooltip="LoRA rank r (alpha = r, scale 1)."),
                io.Boolean.Input(
                    "train_text_encoder",
                    default=True,
                    tooltip="Also fine-tune the text encoder (LoRA on its attention), as S2Edit does.",
                ),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, tooltip="Timesteps, noise, LoRA init."),
                io.String.Input(
                    "name",
                    default="pe_identity",
                    tooltip="File stem: <name>_NNNNN.safetensors in models/embeddings and models/loras (letters, "
                    "digits, '_' and '-'; not a Windows device name such as CON or NUL).",
                ),
                io.Mask.Input(
                    "mask",
                    optional=True,
                    tooltip="Object mask M_obj at image size for spatial control; empty: the subject noun's attention.",
                ),
                SemanticControlType.Input(
                    "semantic_control", optional=True, tooltip="From Orthogonality Loss: adds λ|cos(e_P, e_[I])|."
                ),
                SpatialControlType.Input(
                    "spatial_control", optional=True, tooltip="From Spatial Control: masks [I]'s cross-attention."
                ),
                io.Image.Input(
                    "reference_image", optional=True, tooltip="Compositional editing: the image of the attribute."
                ),
                io.String.Input(
                    "reference_prompt",
                    default="a photo of a lady with [A] makeup",
                    multiline=True,
                    optional=True,
                    tooltip="Prompt of the reference image with the attribute placeholder [A].",
                ),
                io.String.Input(
                    "reference_subject",
                    default="makeup",
                    optional=True,
                    tooltip="Noun of the reference prompt naming the attribute's region (initialises [A]).",
                ),
                io.Mask.Input(
                    "reference_mask", optional=True, tooltip="Mask of the attribute region in the reference image."
                ),
                io.Combo.Input(
                    "learning_rate_schedule",
                    options=SCHEDULE_OPTIONS.keys,
                    default=SCHEDULE_CONSTANT,
                    optional=True,
                    tooltip=SCHEDULE_OPTIONS.tooltip(
                        "The learning rates over the steps; linear gives a steadier final state (with the "
                        "orthogonality term it settles |cos| near 0 instead of leaving it mid-swing)."
                    ),
                ),
            ],
            outputs=[
                io.Model.Output(display_name="MODEL", tooltip="The model with the learned LoRA applied."),
                io.Clip.Output(
                    display_name="CLIP", tooltip="The CLIP with the text-encoder LoRA; embedding:<name> works."
                ),
                IdentityType.Output(
                    display_name="IDENTITY", tooltip="Tokens, masks, prompts and files, for S2Edit editing."
                ),
                io.Image.Output(display_name="LOSS_CURVE", tooltip="The training loss per step (log scale)."),
            ],
        )

    @classmethod
    def validate_inputs(cls, learning_rate_schedule: str | None = None) -> bool | str:
        return SCHEDULE_OPTIONS.validate("learning_rate_schedule", learning_rate_schedule)

    @classmethod
    def execute(
        cls,
        model,
        clip,
        vae,
        image: torch.Tensor,
        prompt: str,
        subject: str,
        steps: int,
        token_learning_rate: float,
        unet_learning_rate: float,
        text_encoder_learning_rate: float,
        rank: int,
        train_text_encoder: bool,
        seed: int,
        name: str,
        mask: torch.Tensor | None = None,
        semantic_control: SemanticControl | None = None,
        spatial_control: SpatialControl | None = None,
        reference_image: torch.Tensor | None = None,
        reference_prompt: str = "",
        reference_subject: str = "",
        reference_mask: torch.Tensor | None = None,
        learning_rate_schedule: str = SCHEDULE_CONSTANT,
    ) -> io.NodeOutput:
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        learning_rate_schedule = SCHEDULE_OPTIONS.key("learning_rate_schedule", learning_rate_schedule)
        name_parts(name, "name", "models/embeddings and models/loras", subfolders=False)
        stem = free_stem(check_name(name))
        if mask is None and spatial_control is not None:
            mask = spatial_control.mask
        subjects = [
            make_subject(
                vae,
                image,
                prompt=prompt,
                noun=subject,
                mask=mask,
                placeholder=IDENTITY,
                embedding_name=stem,
                label="",
            )
        ]
        if reference_image is not None:
            subjects.append(
                make_subject(
                    vae,
                    reference_image,
                    prompt=reference_prompt,
                    noun=reference_subject,
                    mask=reference_mask,
                    placeholder=ATTRIBUTE,
                    embedding_name=f"{stem}_A",
                    label="reference_",
                )
            )
        elif reference_mask is not None:
            raise ValueError("reference_mask: connect reference_image too (compositional editing needs both)")
        settings = TrainingSettings(
            steps=steps,
            token_lr=token_learning_rate,
            unet_lr=unet_learning_rate,
            text_encoder_lr=text_encoder_learning_rate,
            rank=rank,
            train_text_encoder=train_text_encoder,
            seed=seed,
            schedule=learning_rate_schedule,
        )
        progress = TrainerProgress(steps)

        def on_step(report: StepReport) -> None:
            progress.record(report.step, report.loss)

        with torch.inference_mode(False), torch.enable_grad():
            result = train_identity(
                model, clip, subjects, settings, semantic=semantic_control, spatial=spatial_control, on_step=on_step
            )

        last = result.reports[-1]
        metadata = {
            "method": "S2Edit identity fine-tuning (Precise Edit)",
            "prompts": " | ".join(s.prompt for s in subjects),
            "subjects": " | ".join(s.noun for s in subjects),
            "steps": str(steps),
            "token_learning_rate": str(token_learning_rate),
            "unet_learning_rate": str(unet_learning_rate),
            "text_encoder_learning_rate": str(text_encoder_learning_rate if train_text_encoder else 0.0),
            "rank": str(rank),
            "seed": str(seed),
            "learning_rate_schedule": learning_rate_schedule,
            "semantic_weight": str(semantic_control.weight if semantic_control else 0.0),
            "semantic_vectors": semantic_control.vectors if semantic_control else "",
            "spatial_control": "on" if spatial_control else "off",
            "final_loss": f"{last.loss:.6g}",
            "final_reconstruction": f"{last.reconstruction:.6g}",
            **{f"initial_cosine_{p}": f"{c:.6g}" for p, c in result.reports[0].cosines.items()},
            **{f"final_cosine_{p}": f"{c:.6g}" for p, c in last.cosines.items()},
        }
        for s in subjects:
            save_embedding(result.vectors[s.embedding_name], s.embedding_name, metadata)
        save_safetensors_atomically(result.lora, save_folder(LORAS) / f"{stem}.safetensors", metadata)
        tokens = tuple(
            IdentityToken(
                placeholder=s.placeholder,
                embedding_name=s.embedding_name,
                vectors=result.vectors[s.embedding_name],
                mask=result.masks[s.placeholder] if spatial_control is not None else s.mask,
                source_prompt=s.prompt,
                subject=s.noun,
            )
            for s in subjects
        )
        identity = Identity(
            tokens=tokens, source_prompt=prompt, lora_name=f"{stem}.safetensors", lora=result.lora, metadata=metadata
        )
        trained_model, trained_clip = comfy.sd.load_lora_for_models(model, clip, result.lora, 1.0, 1.0)
        return io.NodeOutput(trained_model, trained_clip, identity, progress.curve_image())


PAPER_WEIGHT = 0.1


def _eos_row(clip: CLIP, text: str) -> torch.Tensor:
    tokens = clip.tokenize(text)
    end = clip_tokenizer(clip).end_token
    chunk = tokens[next(iter(tokens))][0]
    position = next(i for i, entry in enumerate(chunk) if i > 0 and entry[0] == end)
    return clip.encode_from_tokens(tokens)[0, position]


def token_cosine(clip: CLIP, identity: Identity, token: IdentityToken, *, vectors: str, source_prompt: str) -> float:
    """|cos(e_P, e_[I])| of a learned token, encoded by ``clip`` (the trainer's CLIP output) as the trainer does."""
    prompt = source_prompt.strip() or remove_placeholder(token.source_prompt, token.placeholder)
    expanded = identity.expand(token.source_prompt)
    if vectors == VECTORS_INPUT:
        token_vector = torch.cat([vector[0] for vector in token.vectors.values()])
    else:
        position = locate_words(clip, expanded, f"embedding:{token.embedding_name}").all_positions[0]
        token_vector = clip.encode_from_tokens(clip.tokenize(expanded))[0, position]
    return float(absolute_cosine(_eos_row(clip, prompt), token_vector))


class OrthogonalityLoss(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_OrthogonalityLoss",
            display_name="Orthogonality Loss (S2Edit)",
            category="Precise Edit/S2Edit",
            description=(
                "S2Edit's semantic control for the Identity Token Trainer: adds λ·|cos(e_P, e_[I])| to the "
                "reconstruction loss, with e_P the source prompt's EOS (pooled) embedding and e_[I] the identity "
                "token's embedding, so [I] learns only what the prompt does not say (glasses stay editable). "
                "With an identity connected it also reports the learned tokens' current |cos|."
            ),
            inputs=[
                io.Clip.Input("clip", tooltip="The CLIP to measure with (the trainer's CLIP output for a report)."),
                io.String.Input(
                    "source_prompt",
                    default="",
                    multiline=True,
                    tooltip="The source prompt P without the placeholder; empty: the trainer's prompt minus [I].",
                ),
                io.Float.Input(
                    "weight",
                    default=PAPER_WEIGHT,
                    min=0.0,
                    max=100.0,
                    step=0.01,
                    tooltip="λ in L = L_recons + λ L_semantic (0.1 in the paper; 0 only reports).",
                ),
                io.Combo.Input(
                    "vectors",
                    options=VECTOR_OPTIONS.keys,
                    default=VECTORS_OUTPUT,
                    tooltip=VECTOR_OPTIONS.tooltip(
                        "e_P is the EOS row of P's conditioning (CLIP's pooled vector before projection on SD1.x)."
                    ),
                ),
                IdentityType.Input(
                    "identity", optional=True, tooltip="A trained identity, to report its tokens' current |cos|."
                ),
            ],
            outputs=[
                SemanticControlType.Output(
                    display_name="SEMANTIC_CONTROL", tooltip="Connect to the trainer's semantic_control input."
                ),
                io.Float.Output(display_name="COSINE", tooltip="|cos(e_P, e_[I])| of the identity token [I]."),
                io.String.Output(display_name="REPORT", tooltip="|cos| of every learned token, as text."),
            ],
        )

    @classmethod
    def validate_inputs(cls, vectors: str | None = None) -> bool | str:
        return VECTOR_OPTIONS.validate("vectors", vectors)

    @classmethod
    def execute(
        cls, clip, source_prompt: str, weight: float, vectors: str, identity: Identity | None = None
    ) -> io.NodeOutput:
        vectors = VECTOR_OPTIONS.key("vectors", vectors)
        term = SemanticControl(weight, vectors, source_prompt)
        if identity is None:
            blocker = ExecutionBlocker("COSINE and REPORT need an identity connected to the identity input")
            return io.NodeOutput(term, blocker, blocker)
        cosines = {
            t.placeholder: token_cosine(clip, identity, t, vectors=vectors, source_prompt=source_prompt)
            for t in identity.tokens
        }
        report = ", ".join(f"{p}: |cos| = {c:.4f}" for p, c in cosines.items())
        return io.NodeOutput(term, cosines[identity.tokens[0].placeholder], report)


LOCAL_BLEND_THRESHOLD = 0.3


def mask_identity_attention(
    model: ModelPatcher, clip: CLIP, identity: Identity, text: str, target: PromptTarget | None = None
) -> ModelPatcher:
    """A clone of ``model`` whose cross-attention to each placeholder of ``text`` ("a [I] lady with a smile") is
    multiplied by that token's mask, for the prompt ``target`` (default: the sampler's positive prompt).

    ``text`` is expanded with ``identity.expand``; ``clip`` must find the saved embeddings (models/embeddings).
    Tokens without a mask, or absent from ``text``, are left alone.
    """
    expanded = identity.expand(text)
    layers = cross_attention_layers(model)
    patched = model
    for token in identity.tokens:
        if token.mask is None or token.placeholder not in text:
            continue
        positions = locate_words(clip, expanded, f"embedding:{token.embedding_name}")
        effect = TokenMask(
            tokens=tuple(positions.all_positions),
            context_length=positions.context_length,
            mask=token.mask,
            strength=1.0,
            renormalize=False,
            steps=StepRange(math.inf, 0.0),
            target=target or PromptTarget(role="positive"),
        )
        patched = add_cross_attention_effect(patched, effect, layers)
    return patched


class SpatialControlNode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_SpatialControl",
            display_name="Spatial Control (S2Edit)",
            category="Precise Edit/S2Edit",
            description=(
                "S2Edit's spatial control for the Identity Token Trainer: the identity token's cross-attention "
                "is multiplied by the object mask M_obj in every cross-attention layer at every training step "
                "(A*[I] = A[I] ⊙ M_obj), so [I] cannot learn the background. The mask is the one connected here "
                "(or to the trainer), else the subject noun's cross-attention on the 16×16-equivalent layers, "
                "normalised by its maximum and thresholded. The mask travels in PE_IDENTITY for editing."
            ),
            inputs=[
                io.Float.Input(
                    "threshold",
                    default=LOCAL_BLEND_THRESHOLD,
                    min=0.01,
                    max=1.0,
                    step=0.01,
                    tooltip="Automatic mask: 1 where the noun's normalised attention ≥ threshold (0.3 as in "
                    "prompt-to-prompt's LocalBlend).",
                ),
                io.Mask.Input(
                    "mask",
                    optional=True,
                    tooltip="Object mask M_obj at image size (1 = the subject); the trainer's own mask input wins.",
                ),
            ],
            outputs=[
                SpatialControlType.Output(
                    display_name="SPATIAL_CONTROL", tooltip="Connect to the trainer's spatial_control input."
                ),
            ],
        )

    @classmethod
    def execute(cls, threshold: float, mask: torch.Tensor | None = None) -> io.NodeOutput:
        if mask is not None:
            mask = spatial_mask_batch(mask)
            if mask.shape[0] != 1:
                raise ValueError(f"mask: give one object mask for the subject, got a batch of {mask.shape[0]}")
        return io.NodeOutput(SpatialControl(mask, threshold))


class IdentityPrompt(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_IdentityPrompt",
            display_name="Identity Prompt",
            category="Precise Edit/S2Edit",
            description=(
                "Replaces the placeholders of a learned identity ([I], [A]) in a prompt by embedding:<name> of the "
                "files the trainer saved, so that a stock CLIP Text Encode (for Null-Text Inversion, KSampler, ...) "
                "encodes the learned tokens. The embedding names change with every training run; this node keeps "
                "prompts written with placeholders."
            ),
            inputs=[
                IdentityType.Input("identity", tooltip="From the S2Edit identity-token trainer."),
                io.String.Input(
                    "text",
                    multiline=True,
                    default="a photo of a [I] lady",
                    tooltip="A prompt with the identity's placeholders, e.g. 'a photo of a [I] lady'.",
                ),
            ],
            outputs=[
                io.String.Output(
                    display_name="STRING", tooltip="The prompt with embedding:<name> for each placeholder."
                ),
            ],
        )

    @classmethod
    def execute(cls, identity: Identity, text: str) -> io.NodeOutput:
        placeholders = [token.placeholder for token in identity.tokens]
        if not any(placeholder in text for placeholder in placeholders):
            raise ValueError(
                f"text: the prompt contains none of the identity's placeholders ({', '.join(placeholders)})"
            )
        return io.NodeOutput(identity.expand(text))


NODES = [IdentityTokenTrainer, OrthogonalityLoss, SpatialControlNode, IdentityPrompt]
