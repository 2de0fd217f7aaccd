"""PreciseEdit_MCDMTrainer: train a Multi-Conditioned Diffusion Model on a folder of (x_A, x_B) pairs.

The UNet of the base SD1.x model gets an 8-channel conv_in (new channels zero) and is trained with a fresh
image-embedding adapter (``core.mcdm_training`` has the step); the text encoder, the VAE and CLIP vision only encode
the pairs once. Checkpoints go to ``models/mcdm/checkpoints/<prefix>_step_NNNNNNN.safetensors`` (an MCDM file the
loader reads) with the optimiser and generator state beside it in ``<same name>.training`` (also safetensors), both
written to a temporary file and renamed; the final model goes to ``models/mcdm/<prefix>_NNNNN.safetensors``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import comfy.model_management
import comfy.utils
import torch
import torch.utils.checkpoint
from safetensors import safe_open

from ..core.atomic_file import save_safetensors_atomically
from ..core.mcdm_pairs import PairsData, PairsFolderError, load_pairs
from ..core.mcdm_training import MCDMTraining, NullConditions, TrainingOptions, TrainingSet
from .comfy_node_api import io
from .loss_curve_preview import PREVIEW_SIZE, PREVIEWS, loss_curve
from .mcdm_conditioning import TEXT_TOKENS
from .mcdm_loader import MCDM_FOLDER, checked_vision, resolve_entry
from .mcdm_model import MCDM, load_mcdm, mcdm_from_base_model, read_mcdm_header, save_mcdm
from .mcdm_pairs_folder import pairs_folder_for_reading
from .model_folders import next_free_path
from .socket_types import JointClip, MCDMType

CHECKPOINTS = "checkpoints"
STATE_SUFFIX = ".training"
TRAINING_KEY = "precise_edit_mcdm_training"
NULL_GUIDER = "zero latent + black image (as the MCDM Guider)"
NULL_OFFICIAL = "mid-gray image (official training code)"
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
ENCODE_CHUNK = 8


def encode_text(clip: Any, text: str) -> torch.Tensor:
    """The first 77 tokens of CLIP's conditioning of ``text`` (the release truncates to 77), [77, 768]."""
    tokens = clip.tokenize(text)
    return clip.encode_from_tokens(tokens)[0, :TEXT_TOKENS].float().cpu()


def encode_images(vae: Any, mcdm: MCDM, images: torch.Tensor) -> torch.Tensor:
    """Scaled VAE latents (×0.18215 on SD1.x) of an IMAGE batch, in chunks."""
    chunks = [vae.encode(images[i : i + ENCODE_CHUNK, ..., :3]).float().cpu() for i in range(0, len(images), 8)]
    return mcdm.scale_latent(torch.cat(chunks))


def training_set(data: PairsData, clip: Any, vae: Any, mcdm: MCDM) -> TrainingSet:
    """Run the frozen encoders once over every pair."""
    cache: dict[str, torch.Tensor] = {}

    def text(prompt: str) -> torch.Tensor:
        if prompt not in cache:
            cache[prompt] = encode_text(clip, prompt)
        return cache[prompt]

    with torch.no_grad():
        return TrainingSet(
            source_latents=encode_images(vae, mcdm, data.sources),
            target_latents=encode_images(vae, mcdm, data.targets),
            source_clip=mcdm.vision.hidden_states(data.sources),
            prompts=torch.stack([text(p) for p in data.prompts]),
            source_prompts=torch.stack([text(p) for p in data.source_prompts]),
        )


def null_conditions(mode: str, size: tuple[int, int], clip: Any, vae: Any, mcdm: MCDM) -> NullConditions:
    """The dropped conditions: a black image through CLIP always; the latents depend on ``mode`` (help page)."""
    black = torch.zeros(1, *size, 3)
    with torch.no_grad():
        black_latent = encode_images(vae, mcdm, black)[0]
        if mode == NULL_OFFICIAL:
            gray_latent = encode_images(vae, mcdm, torch.full_like(black, 0.5))[0]
            concat, adapter = gray_latent, gray_latent
        else:
            concat, adapter = torch.zeros_like(black_latent), black_latent
        return NullConditions(concat, adapter, mcdm.vision.hidden_states(black)[0], encode_text(clip, ""))


@contextmanager
def checkpointed(unet: torch.nn.Module, enabled: bool) -> Iterator[None]:
    """While active, every layer of the UNet's input/middle/output blocks (res blocks, transformers, resamplers)
    recomputes its activations in backward. ComfyUI runs the layers of a block one by one, so they are wrapped."""
    sequences = [*unet.input_blocks, unet.middle_block, *unet.output_blocks] if enabled else []
    blocks = [layer for sequence in sequences for layer in sequence]
    originals = [block.forward for block in blocks]
    for block, forward in zip(blocks, originals, strict=True):
        block.forward = lambda *a, _f=forward, **k: torch.utils.checkpoint.checkpoint(_f, *a, use_reentrant=False, **k)
    try:
        yield
    finally:
        for block, forward in zip(blocks, originals, strict=True):
            block.forward = forward


def trained_mcdm(base: MCDM, unet: torch.nn.Module, adapter: torch.nn.Module, name: str) -> MCDM:
    """An MCDM (new ModelPatcher) with the trained weights, copied to the CPU."""
    unet_weights = {key: value.detach().float().cpu().clone() for key, value in unet.state_dict().items()}
    adapter_weights = {key: value.detach().float().cpu().clone() for key, value in adapter.state_dict().items()}
    return base.with_weights(unet_state_dict=unet_weights, adapter_state_dict=adapter_weights, name=name)


def save_trained(base: MCDM, adapter: torch.nn.Module, path: Path, record: dict) -> None:
    """The fp32 weights being trained (``base``'s UNet module is the one trained in place) in the MCDM format."""
    save_mcdm(replace(base, adapter=adapter), path, {TRAINING_KEY: json.dumps(record)})


def save_checkpoint(base: MCDM, training: MCDMTraining, adapter: torch.nn.Module, path: Path, record: dict) -> None:
    """The model (loadable by MCDM Loader) first, then its training state next to it; each written atomically."""
    record = {**record, "step": training.step_count}
    save_trained(base, adapter, path, record)
    tensors, metadata = training.state()
    save_safetensors_atomically(tensors, path.with_suffix(STATE_SUFFIX), {**metadata, TRAINING_KEY: json.dumps(record)})


def resume_path(resume_from: str) -> Path:
    path = Path(resume_from.strip()).expanduser()
    if not path.is_absolute():
        try:
            path = resolve_entry(resume_from.strip())
        except FileNotFoundError:
            path = Path(resolve_folder()) / resume_from.strip()
    state = path.with_suffix(STATE_SUFFIX)
    if not path.is_file() or not state.is_file() or read_mcdm_header(path) is None:
        raise ValueError(
            f"resume_from {resume_from!r}: expected a checkpoint written by this trainer (an MCDM .safetensors in "
            f"models/{MCDM_FOLDER}/{CHECKPOINTS} with its {STATE_SUFFIX} file beside it)"
        )
    return path


def load_resume(path: Path, training: MCDMTraining, unet: torch.nn.Module, adapter: torch.nn.Module, pairs: int):
    """Restore weights, optimiser, generator and step from a checkpoint; refuse one from another training set."""
    checkpoint = load_mcdm(path)
    state_path = path.with_suffix(STATE_SUFFIX)
    with safe_open(str(state_path), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    record = json.loads(metadata[TRAINING_KEY])
    if record.get("pairs") != pairs:
        raise ValueError(
            f"resume_from: the checkpoint was trained on {record.get('pairs')} pairs, the pairs folder has {pairs}; "
            "resume with the same pairs folder"
        )
    unet_weights = checkpoint.unet_state_dict()
    if {k: tuple(v.shape) for k, v in unet_weights.items()} != {
        k: tuple(v.shape) for k, v in unet.state_dict().items()
    }:
        raise ValueError("resume_from: the checkpoint's UNet does not match the base model's architecture")
    with torch.no_grad():
        unet.load_state_dict(unet_weights)
        adapter.load_state_dict(checkpoint.adapter.state_dict())
    training.load_state(tensors, metadata)


class MCDMTrainer(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_MCDMTrainer",
            display_name="MCDM Trainer",
            category="Precise Edit/MCDM",
            description=(
                "Trains a Multi-Conditioned Diffusion Model on a folder of generated pairs (condition/, gt/, "
                "prompt.json): the base SD1.x UNet with conv_in widened to 8 channels (source latent, new weights "
                "zero) and the image-embedding adapter learn ε-prediction MSE at uniform timesteps, with 5 % "
                "reconstruction pairs and 20 % condition dropout; text encoder, VAE and CLIP vision stay frozen. "
                "Saves resumable checkpoints and the final model to models/mcdm."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The base SD1.x model whose UNet is fine-tuned (it is not changed)."),
                io.Clip.Input("clip", tooltip="The base model's text encoder (frozen): encodes the pair prompts."),
                io.Vae.Input("vae", tooltip="The base model's VAE (frozen): encodes x_A and x_B."),
                io.String.Input(
                    "pairs_folder",
                    default="mcdm_pairs/edit",
                    tooltip="The pairs folder (condition/, gt/, prompt.json) inside ComfyUI's output directory (where "
                    "Paired Data Generator writes), else its input directory. '..', absolute paths and drive "
                    "letters are refused.",
                ),
                io.Int.Input("steps", default=5000, min=1, max=10_000_000, tooltip="Total optimiser steps."),
                io.Int.Input("batch_size", default=4, min=1, max=256, tooltip="Pairs per step (4 in the release)."),
                io.Float.Input(
                    "learning_rate",
                    default=5e-6,
                    min=1e-8,
                    max=1.0,
                    step=1e-7,
                    round=1e-9,
                    tooltip="AdamW learning rate (5e-6 in the release; betas 0.9/0.999, weight decay 0.01).",
                ),
                io.Int.Input(
                    "seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, tooltip="Adapter init, batches, noise, dropout."
                ),
                io.Int.Input(
                    "checkpoint_every",
                    default=1000,
                    min=0,
                    max=10_000_000,
                    tooltip="Write a resumable checkpoint every N steps (0: none); one is also written on Interrupt.",
                ),
                io.String.Input(
                    "filename_prefix",
                    default="mcdm",
                    tooltip="Saved as models/mcdm/<prefix>_NNNNN.safetensors; checkpoints under models/mcdm/"
                    "checkpoints/. 'sub/name' saves in a subfolder; '..', absolute paths, drive letters and "
                    "Windows device names (CON, NUL, …) are refused.",
                ),
                io.Combo.Input(
                    "null_image",
                    options=[NULL_GUIDER, NULL_OFFICIAL],
                    default=NULL_GUIDER,
                    tooltip="What a dropped image condition is in training: what the MCDM Guider feeds as "
                    "unconditional (default), or the release's mid-gray (normalised zeros).",
                ),
                io.Combo.Input(
                    "mixed_precision",
                    options=list(PRECISIONS),
                    default="fp32",
                    tooltip="Autocast dtype of the forward pass (weights stay fp32; fp16 uses a gradient scaler).",
                ),
                io.Boolean.Input(
                    "gradient_checkpointing",
                    default=False,
                    tooltip="Recompute UNet block activations in backward: less memory, about 30 % slower.",
                ),
                io.String.Input(
                    "resume_from",
                    default="",
                    tooltip="A checkpoint in models/mcdm (e.g. checkpoints/mcdm_step_0001000.safetensors) to continue; "
                    "empty: start from the base model.",
                ),
                JointClip.Input(
                    "joint_clip",
                    optional=True,
                    tooltip="CLIP ViT-B/32 (Joint CLIP Loader) whose vision hidden states feed the adapter.",
                ),
                io.ClipVision.Input(
                    "clip_vision",
                    optional=True,
                    tooltip="A stock CLIP_VISION with 50×768 hidden states, used when no joint_clip is given.",
                ),
            ],
            outputs=[
                MCDMType.Output(display_name="MCDM", tooltip="The trained MCDM (also saved), ready for the guider."),
                io.LossMap.Output(display_name="LOSS", tooltip="Loss per step, for Plot Loss Graph."),
            ],
            is_output_node=True,
        )

    @classmethod
    def execute(
        cls,
        model: Any,
        clip: Any,
        vae: Any,
        pairs_folder: str,
        steps: int,
        batch_size: int,
        learning_rate: float,
        seed: int,
        checkpoint_every: int,
        filename_prefix: str,
        null_image: str,
        mixed_precision: str,
        gradient_checkpointing: bool,
        resume_from: str,
        joint_clip: Any = None,
        clip_vision: Any = None,
    ) -> io.NodeOutput:
        if joint_clip is None and clip_vision is None:
            raise ValueError("joint_clip / clip_vision: connect CLIP ViT-B/32 vision for the image-embedding adapter")
        final_path = next_free_path(MCDM_FOLDER, filename_prefix)
        try:
            data = load_pairs(pairs_folder_for_reading(pairs_folder))
        except PairsFolderError as error:
            raise ValueError(f"pairs_folder: {error}") from None
        resume = resume_path(resume_from) if resume_from.strip() else None
        checkpoint_stem = final_path.parent / CHECKPOINTS / final_path.stem
        device = comfy.model_management.get_torch_device()
        options = TrainingOptions(batch_size=batch_size, learning_rate=learning_rate)
        record = {"pairs": len(data.prompts), "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed}
        losses: list[float] = []

        with torch.inference_mode(False), torch.enable_grad():
            base = mcdm_from_base_model(model, name=final_path.name, seed=seed)
            base = base.with_vision(
                checked_vision(
                    *(
                        (joint_clip, base, "joint_clip")
                        if joint_clip is not None
                        else (clip_vision, base, "clip_vision")
                    )
                )
            )
            encoded = training_set(data, clip, vae, base)
            nulls = null_conditions(null_image, tuple(data.sources.shape[1:3]), clip, vae, base)
            unet = _trainable_copy(base.unet_module(), device)
            adapter = _trainable_copy(base.adapter, device)
            sampling = model.get_model_object("model_sampling")
            alphas_cumprod = 1.0 / (1.0 + sampling.sigmas.detach().float().cpu() ** 2)
            dtype = PRECISIONS[mixed_precision]
            precision = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype is not None else nullcontext
            scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
            training = MCDMTraining(
                unet,
                adapter,
                _to_device(encoded, device),
                NullConditions(*(t.to(device) for t in vars(nulls).values())),
                alphas_cumprod.to(device),
                options,
                seed,
                denoiser=lambda x, t, context: unet(x, t, context=context, transformer_options={}),
                precision=precision,
                scaler=scaler,
            )
            if resume is not None:
                load_resume(resume, training, unet, adapter, len(data.prompts))
            progress = comfy.utils.ProgressBar(steps)
            preview_every = max(1, steps // PREVIEWS)

            def checkpoint() -> None:
                path = checkpoint_stem.parent / f"{checkpoint_stem.name}_step_{training.step_count:07d}.safetensors"
                save_checkpoint(base, training, adapter, path, record)

            with checkpointed(unet, gradient_checkpointing):
                unet.train()
                while training.step_count < steps:
                    try:
                        comfy.model_management.throw_exception_if_processing_interrupted()
                    except comfy.model_management.InterruptProcessingException:
                        if training.step_count > 0:
                            checkpoint()
                        raise
                    losses.append(training.step())
                    step = training.step_count
                    if checkpoint_every and step % checkpoint_every == 0:
                        checkpoint()
                    preview = None
                    if step % preview_every == 0 or step == steps:
                        preview = ("JPEG", loss_curve(losses, steps), max(PREVIEW_SIZE))
                    progress.update_absolute(step, steps, preview)
            unet.eval()
            result = trained_mcdm(base, unet, adapter, final_path.name).with_vision(base.vision)
            final_record = {**record, "step": training.step_count, "final_loss": losses[-1] if losses else None}
            save_trained(base, adapter, final_path, final_record)
        return io.NodeOutput(result, {"loss": losses})


def resolve_folder() -> str:
    import folder_paths

    return folder_paths.get_folder_paths(MCDM_FOLDER)[0]


def _trainable_copy(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``module`` with every parameter a fresh fp32 tensor that requires grad (never an inference tensor)."""
    for sub in module.modules():
        for name, parameter in list(sub._parameters.items()):
            if parameter is not None:
                sub._parameters[name] = torch.nn.Parameter(parameter.detach().to(device, torch.float32).clone())
        for name, buffer in list(sub._buffers.items()):
            if buffer is not None:
                sub._buffers[name] = buffer.detach().to(device).clone()
    return module.to(device)


def _to_device(data: TrainingSet, device: torch.device) -> TrainingSet:
    return TrainingSet(*(tensor.to(device) for tensor in vars(data).values()))
