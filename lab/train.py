"""Train the lab's UNet on captioned scenes and portraits (v-prediction, caption dropout), cached by hash.

``python -m lab.train [--threads N]`` trains (or finds in the cache) every lab model and prints the time taken.
Recipe (what a prototype found to work on 2 CPU cores): uniform timesteps of SD1's 1000-step schedule, v-target MSE,
Adam with linear warm-up and linear decay, gradient clipping at 1, 10 % of captions dropped to the empty prompt (the
unconditional branch of classifier-free guidance), and an exponential moving average of the weights.
"""

from __future__ import annotations

import argparse
import copy
import logging
import time
from typing import Any

import numpy as np
import torch

from lab import cache, world
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


def _lr_factor(step: int, config: dict[str, Any]) -> float:
    if step < config["warmup"]:
        return (step + 1) / config["warmup"]
    progress = (step - config["warmup"]) / max(1, config["steps"] - config["warmup"])
    return 1.0 - (1.0 - config["final_lr_share"]) * progress


@torch.inference_mode(False)
@torch.enable_grad()
def train_unet(config: dict[str, Any], clip: Any) -> dict[str, torch.Tensor]:
    """Train from scratch; return the EMA weights of the UNet. Gradients are on even when a ComfyUI executor (which
    runs nodes under inference mode) reaches this through the lab loader on a fresh cache."""
    torch.manual_seed(config["seed"])
    rng = np.random.default_rng(config["seed"])
    model = unet.build_model(trainable=True)
    network = model.diffusion_model.train()
    network.requires_grad_(True)
    ema = copy.deepcopy(network).eval().requires_grad_(False)
    sigmas = model.model_sampling.sigmas.float()
    encode = CaptionEncoder(clip)
    empty = encode([""])[0]
    optimiser = torch.optim.Adam(network.parameters(), lr=config["lr"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: _lr_factor(step, config))
    size = config["batch"]
    start = time.perf_counter()
    seeds = [config["seed"] * 1_000_003 + i for i in range(config["dataset"])]
    latents, contexts = dataset(seeds, config["portrait_share"], encode)
    log.warning("lab dataset: %d samples in %.0f s", len(seeds), time.perf_counter() - start)
    for step in range(config["steps"]):
        chosen = torch.from_numpy(rng.integers(0, len(seeds), size))
        x0, context = latents[chosen], contexts[chosen].clone()
        dropped = torch.from_numpy(rng.random(size) < config["caption_dropout"])
        context[dropped] = empty
        t = torch.from_numpy(rng.integers(0, 1000, size))
        sigma = sigmas[t].view(-1, 1, 1, 1)
        alpha, s = 1 / (1 + sigma**2).sqrt(), sigma / (1 + sigma**2).sqrt()
        noise = torch.randn_like(x0)
        x_t = alpha * x0 + s * noise
        target = alpha * noise - s * x0
        loss = torch.nn.functional.mse_loss(network.velocity(x_t, t.float(), context), target)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), config["clip"])
        optimiser.step()
        scheduler.step()
        decay = min(config["ema"], (step + 1) / (step + 10))
        with torch.no_grad():
            for averaged, current in zip(ema.parameters(), network.parameters(), strict=True):
                averaged.lerp_(current, 1 - decay)
        if step % 100 == 0 or step == config["steps"] - 1:
            elapsed = time.perf_counter() - start
            log.warning("lab unet step %d/%d loss %.4f (%.0f s)", step, config["steps"], loss.item(), elapsed)
    return {key: value for key, value in ema.state_dict().items() if not key.startswith("lab_")}


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
