"""One training step of the Multi-Conditioned Diffusion Model (MCDM, Chen et al. 2024, §3.3) and its bookkeeping.

For a pair (x_A, x_B) with prompt p, the UNet (conv_in widened to 8 channels) and the image-embedding adapter learn

    L = E_{t ~ U[0, T), ε ~ N(0, I)} ‖ ε − ε_θ([z_t ; E(x_A)], t, [c_p ; c_im(x_A)]) ‖²,
    z_t = √ᾱ_t · E(x_B) + √(1 − ᾱ_t) · ε,      c_im(x_A) = adapter(CLIP_im(x_A), E(x_A)),

with the text encoder, the VAE and CLIP vision frozen (their outputs are computed once, ``TrainingSet``).

Following the release (``dataset/dataset.py``), per sample:

- with probability ``reconstruction_prob`` (5 %) the pair is a reconstruction pair: target = source, p = source
  prompt;
- with probability ``dropout_rate`` (20 %) one condition set is replaced by its null, four equal buckets of 5 %:
  ``CONCAT`` (the concat latent), ``EMBEDDING`` (the adapter's CLIP tokens and latent), ``PROMPT`` (the empty
  prompt) and ``ALL`` (the three together). The draws are u ≤ r/4, ≤ r/2, ≤ 3r/4, ≤ r for one u ~ U[0, 1).

What "null" is comes from ``NullConditions`` (the node builds it, see its help page): the release zeroes the
normalised pixels, i.e. feeds a mid-gray image to the VAE, and a black image to CLIP, while its inference pipeline
uses a zero concat latent and a black image for the embedding; either can be reproduced here.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from enum import IntEnum

import torch

NUM_TIMESTEPS = 1000


class Bucket(IntEnum):
    """Which conditions a sample drops (condition dropout of the release, in its order)."""

    KEEP = 0
    CONCAT = 1
    EMBEDDING = 2
    PROMPT = 3
    ALL = 4


@dataclass(frozen=True)
class TrainingSet:
    """The frozen encoders' outputs for N pairs: scaled VAE latents, CLIP vision tokens of x_A, text embeddings."""

    source_latents: torch.Tensor  # (N, 4, h, w)
    target_latents: torch.Tensor  # (N, 4, h, w)
    source_clip: torch.Tensor  # (N, 50, 768): CLIP last_hidden_state of x_A
    prompts: torch.Tensor  # (N, 77, 768): the edit prompt p
    source_prompts: torch.Tensor  # (N, 77, 768): the source prompt, for reconstruction pairs

    def __len__(self) -> int:
        return self.source_latents.shape[0]


@dataclass(frozen=True)
class NullConditions:
    """What a dropped condition becomes: concat latent, adapter latent, CLIP tokens and text of the null input."""

    concat_latent: torch.Tensor  # (4, h, w)
    adapter_latent: torch.Tensor  # (4, h, w)
    clip: torch.Tensor  # (50, 768)
    prompt: torch.Tensor  # (77, 768)


@dataclass(frozen=True)
class TrainingOptions:
    """The release's defaults: AdamW lr 5e-6, betas (0.9, 0.999), wd 1e-2, eps 1e-8, batch 4, clip 1.0."""

    batch_size: int = 4
    learning_rate: float = 5e-6
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-2
    eps: float = 1e-8
    grad_clip: float = 1.0
    dropout_rate: float = 0.2
    reconstruction_prob: float = 0.05


@dataclass(frozen=True)
class Batch:
    """The inputs of one step: the latent to noise, the concat latent, the adapter's inputs and the text."""

    target: torch.Tensor
    concat: torch.Tensor
    adapter_latent: torch.Tensor
    clip: torch.Tensor
    text: torch.Tensor
    buckets: torch.Tensor
    reconstruction: torch.Tensor


def dropout_buckets(uniform: torch.Tensor, rate: float) -> torch.Tensor:
    """The Bucket of each u ~ U[0, 1): CONCAT if u ≤ r/4, EMBEDDING if ≤ r/2, PROMPT if ≤ 3r/4, ALL if ≤ r."""
    buckets = torch.full(uniform.shape, int(Bucket.KEEP), dtype=torch.long)
    for bucket in reversed((Bucket.CONCAT, Bucket.EMBEDDING, Bucket.PROMPT, Bucket.ALL)):
        buckets[uniform <= rate * int(bucket) / 4] = int(bucket)
    return buckets


def assemble_batch(
    data: TrainingSet,
    nulls: NullConditions,
    indices: torch.Tensor,
    *,
    reconstruction_uniform: torch.Tensor,
    dropout_uniform: torch.Tensor,
    options: TrainingOptions,
) -> Batch:
    """The step's inputs for pairs ``indices`` given the two uniform draws per sample (reconstruction, dropout)."""
    device = data.source_latents.device
    reconstruction = (reconstruction_uniform <= options.reconstruction_prob).to(device)
    buckets = dropout_buckets(dropout_uniform, options.dropout_rate).to(device)
    indices = indices.to(device)

    def where(flag: torch.Tensor, replacement: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
        return torch.where(flag.view(-1, *([1] * (kept.dim() - 1))), replacement.to(kept), kept)

    source = data.source_latents[indices]
    target = where(reconstruction, source, data.target_latents[indices])
    text = where(reconstruction, data.source_prompts[indices], data.prompts[indices])
    drop_concat = (buckets == Bucket.CONCAT) | (buckets == Bucket.ALL)
    drop_embedding = (buckets == Bucket.EMBEDDING) | (buckets == Bucket.ALL)
    drop_prompt = (buckets == Bucket.PROMPT) | (buckets == Bucket.ALL)
    return Batch(
        target=target,
        concat=where(drop_concat, nulls.concat_latent.expand_as(source), source),
        adapter_latent=where(drop_embedding, nulls.adapter_latent.expand_as(source), source),
        clip=where(drop_embedding, nulls.clip.expand_as(data.source_clip[indices]), data.source_clip[indices]),
        text=where(drop_prompt, nulls.prompt.expand_as(text), text),
        buckets=buckets,
        reconstruction=reconstruction,
    )


def diffuse(latent: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor, alphas_cumprod: torch.Tensor):
    """DDPM forward process z_t = √ᾱ_t · z_0 + √(1 − ᾱ_t) · ε."""
    alpha = alphas_cumprod.to(latent.device, torch.float32)[timesteps].view(-1, 1, 1, 1)
    return (alpha.sqrt() * latent + (1 - alpha).sqrt() * noise).to(latent.dtype)


Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
Adapter = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def mcdm_loss(
    denoiser: Denoiser,
    adapter: Adapter,
    batch: Batch,
    *,
    noise: torch.Tensor,
    timesteps: torch.Tensor,
    alphas_cumprod: torch.Tensor,
) -> torch.Tensor:
    """‖ε − ε_θ([z_t ; concat], t, [text ; adapter(clip, latent)])‖² averaged over all elements."""
    noisy = diffuse(batch.target, noise, timesteps, alphas_cumprod)
    image_tokens = adapter(batch.clip, batch.adapter_latent)
    context = torch.cat([batch.text, image_tokens.to(batch.text.dtype)], dim=1)
    prediction = denoiser(torch.cat([noisy, batch.concat.to(noisy)], dim=1), timesteps, context)
    return torch.nn.functional.mse_loss(prediction.float(), noise.float())


class MCDMTraining:
    """AdamW over UNet + adapter, one seeded CPU generator for every draw, resumable bit for bit (``state``).

    ``precision`` returns the autocast context of a forward pass; ``scaler`` is a GradScaler for fp16 or None.
    """

    def __init__(
        self,
        unet: torch.nn.Module,
        adapter: torch.nn.Module,
        *,
        data: TrainingSet,
        nulls: NullConditions,
        alphas_cumprod: torch.Tensor,
        options: TrainingOptions,
        seed: int,
        denoiser: Denoiser | None = None,
        precision: Callable[[], AbstractContextManager] = nullcontext,
        scaler: torch.amp.GradScaler | None = None,
    ) -> None:
        if len(data) == 0:
            raise ValueError("the training set is empty")
        self.unet, self.adapter, self.data, self.nulls, self.options = unet, adapter, data, nulls, options
        self.alphas_cumprod = alphas_cumprod
        self.denoiser = denoiser or (lambda x, t, context: unet(x, t, context=context))
        self.precision, self.scaler = precision, scaler
        self.optimizer = torch.optim.AdamW(
            itertools.chain(unet.parameters(), adapter.parameters()),
            lr=options.learning_rate,
            betas=options.betas,
            weight_decay=options.weight_decay,
            eps=options.eps,
        )
        self.generator = torch.Generator().manual_seed(seed)
        self.step_count = 0

    def draw(self) -> tuple[Batch, torch.Tensor, torch.Tensor]:
        """The next batch, noise and timesteps (uniform in [0, 1000)) from the generator."""
        size, generator = self.options.batch_size, self.generator
        indices = torch.randint(0, len(self.data), (size,), generator=generator)
        reconstruction_uniform = torch.rand(size, generator=generator)
        dropout_uniform = torch.rand(size, generator=generator)
        timesteps = torch.randint(0, NUM_TIMESTEPS, (size,), generator=generator)
        noise = torch.randn((size, *self.data.target_latents.shape[1:]), generator=generator)
        batch = assemble_batch(
            self.data,
            self.nulls,
            indices,
            reconstruction_uniform=reconstruction_uniform,
            dropout_uniform=dropout_uniform,
            options=self.options,
        )
        device = self.data.target_latents.device
        return batch, noise.to(device, self.data.target_latents.dtype), timesteps.to(device)

    def step(self) -> float:
        """One optimiser step; returns the loss. Gradients of the UNet are clipped to norm ``grad_clip``."""
        batch, noise, timesteps = self.draw()
        self.optimizer.zero_grad(set_to_none=True)
        with self.precision():
            loss = mcdm_loss(
                self.denoiser, self.adapter, batch, noise=noise, timesteps=timesteps, alphas_cumprod=self.alphas_cumprod
            )
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        torch.nn.utils.clip_grad_norm_(self.unet.parameters(), self.options.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.step_count += 1
        return float(loss.detach())

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """Optimiser moments, generator state and step as tensors + metadata, for a checkpoint."""
        saved = self.optimizer.state_dict()
        tensors = {"rng": self.generator.get_state()}
        for index, entry in saved["state"].items():
            for key, value in entry.items():
                tensors[f"optimizer.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
        metadata = {
            "step": str(self.step_count),
            "param_groups": json.dumps(saved["param_groups"]),
            "scaler": json.dumps(self.scaler.state_dict() if self.scaler is not None else None),
        }
        return tensors, metadata

    def load_state(self, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
        """Continue from ``state()``: optimiser moments, generator and step count (weights are loaded separately)."""
        entries: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("optimizer."):
                _, index, name = key.split(".", 2)
                entries.setdefault(int(index), {})[name] = value
        groups = json.loads(metadata["param_groups"])
        for group in groups:
            group["betas"] = tuple(group["betas"])
        self.optimizer.load_state_dict({"state": entries, "param_groups": groups})
        self.generator.set_state(tensors["rng"].to(torch.uint8))
        self.step_count = int(metadata["step"])
        scaler = json.loads(metadata.get("scaler", "null"))
        if self.scaler is not None and scaler is not None:
            self.scaler.load_state_dict(scaler)
