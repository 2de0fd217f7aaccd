"""Train the lab's UNet on captioned scenes and portraits (v-prediction, caption dropout), cached by hash.

``python -m lab.train [--threads N]`` trains (or finds in the cache) every lab model and prints the time taken.
Recipe (what a prototype found to work on 2 CPU cores): uniform timesteps of SD1's 1000-step schedule, v-target MSE,
Adam with linear warm-up and linear decay, gradient clipping at 1, 10 % of captions dropped to the empty prompt (the
unconditional branch of classifier-free guidance), and an exponential moving average of the weights.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

import numpy as np
import torch

from lab import cache, diffusion_training, world
from lab.models import text_encoder, unet
from lab.models.cell_latent import model_latent

TEXT_ENCODER_CONFIG: dict[str, Any] = {"seed": 7}
UNET_TRAINING: dict[str, Any] = {
    "seed": 11,
    "steps": 1000,
    "dataset": 6000,
    "batch": 32,
    "lr": 1e-3,
    "warmup": 50,
    "final_lr_share": 0.05,
    "caption_dropout": 0.1,
    "portrait_share": 0.25,
    "ema": 0.995,
    "clip": 1.0,
}

log = logging.getLogger("lab.train")


def text_encoder_state() -> dict[str, torch.Tensor]:
    """The text encoder's weights: seeded random (cached like every lab model)."""
    seed = TEXT_ENCODER_CONFIG["seed"]
    return cache.cached_state_dict("text_encoder", TEXT_ENCODER_CONFIG, lambda: text_encoder.random_state_dict(seed))


class CaptionEncoder:
    """Encodes a batch of captions with the frozen lab CLIP exactly as CLIPTextEncode does (no weights in captions)."""

    def __init__(self, clip: Any) -> None:
        self.clip = clip

    @torch.no_grad()
    def __call__(self, captions: list[str]) -> torch.Tensor:
        tokens = [[token for token, *_ in self.clip.tokenize(caption)["l"][0]] for caption in captions]
        return self.clip.cond_stage_model.clip_l(tokens)[0].float()


def dataset(seeds: list[int], portrait_share: float, encode: CaptionEncoder) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents and encoded captions of the training samples of ``seeds`` (rendered and encoded once, in chunks)."""
    latents, contexts = [], []
    for start in range(0, len(seeds), 250):
        samples = [world.training_sample(seed, portrait_share) for seed in seeds[start : start + 250]]
        latents.append(model_latent(torch.from_numpy(np.stack([sample.image for sample in samples]))))
        contexts.append(encode([sample.caption for sample in samples]))
    return torch.cat(latents), torch.cat(contexts)


@diffusion_training.gradients_on
def train_unet(config: dict[str, Any], clip: Any) -> dict[str, torch.Tensor]:
    """Train from scratch on the captioned world; return the EMA weights of the UNet."""
    torch.manual_seed(config["seed"])
    rng = np.random.default_rng(config["seed"])
    model = unet.build_model(trainable=True)
    encode = CaptionEncoder(clip)
    empty = encode([""])[0]
    start = time.perf_counter()
    seeds = [config["seed"] * 1_000_003 + i for i in range(config["dataset"])]
    latents, contexts = dataset(seeds, config["portrait_share"], encode)
    log.warning("lab dataset: %d samples in %.0f s", len(seeds), time.perf_counter() - start)

    def batch() -> diffusion_training.Batch:
        chosen = torch.from_numpy(rng.integers(0, len(seeds), config["batch"]))
        context = contexts[chosen].clone()
        context[torch.from_numpy(rng.random(config["batch"]) < config["caption_dropout"])] = empty
        return diffusion_training.Batch(latents[chosen], context)

    sigmas = model.model_sampling.sigmas.float()
    (weights,) = diffusion_training.train(model.diffusion_model, batch, sigmas, config, rng, "lab unet")
    return weights


def unet_state(clip: Any | None = None) -> dict[str, torch.Tensor]:
    """The trained UNet's weights, from the cache or trained now (minutes on 2 cores)."""
    config = {**UNET_TRAINING, "text_encoder": TEXT_ENCODER_CONFIG}

    def build() -> dict[str, torch.Tensor]:
        return train_unet(UNET_TRAINING, clip if clip is not None else text_encoder.build_clip(text_encoder_state()))

    return cache.cached_state_dict("unet", config, build)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    clip = text_encoder.build_clip(text_encoder_state())
    unet_state(clip)
    print(f"lab models ready in {time.perf_counter() - start:.0f} s under {cache.cache_dir()}")


if __name__ == "__main__":
    main()
