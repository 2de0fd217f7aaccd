"""Train the lab's instruction UNet (InstructPix2Pix's recipe on the toy world's edits), cached by hash.

``python -m lab.train_instruction [--threads N]`` trains (or finds in the cache) the model and prints the time taken.

Recipe: InstructPix2Pix's objective, with v-prediction as the part-1 model. For an edit (source, instruction,
target) the noisy target z_t and the source latent c_I are concatenated and the network predicts
v = α ε − σ z₀ given the instruction c_T. Condition dropout makes the three-branch guidance possible: each sample
independently loses its instruction only (empty prompt), its image only (all-zero latent) or both, each with
``dropout`` (InstructPix2Pix drops each 5 %; 10 % here, so that the null branches get enough of a few hundred steps).
Adam with linear warm-up and decay, gradient clipping, an exponential moving average of the weights.
"""

from __future__ import annotations

import argparse
import copy
import logging
import time
from typing import Any

import numpy as np
import torch

from lab import cache, instruction_world, train
from lab.models import instruction_unet, text_encoder
from lab.models.cell_latent import model_latent

SOURCE_FILES = (
    "world.py",
    "instruction_world.py",
    "models/text_encoder.py",
    "models/cell_latent.py",
    "models/unet.py",
    "models/instruction_unet.py",
    "train.py",
    "train_instruction.py",
)
TRAINING: dict[str, Any] = {
    "seed": 21,
    "steps": 700,
    "dataset": 3000,
    "batch": 32,
    "lr": 1e-3,
    "warmup": 50,
    "final_lr_share": 0.05,
    "dropout": 0.1,
    "ema": 0.995,
    "clip": 1.0,
}

log = logging.getLogger("lab.train_instruction")


def dataset(seeds: list[int], encode: train.CaptionEncoder) -> dict[str, torch.Tensor]:
    """Source and target latents and encoded instructions of the edits of ``seeds``."""
    parts: dict[str, list[torch.Tensor]] = {"source": [], "target": [], "instruction": []}
    for start in range(0, len(seeds), 250):
        edits = [instruction_world.edit(seed) for seed in seeds[start : start + 250]]
        for key in ("source", "target"):
            images = np.stack([getattr(sample, key) for sample in edits])
            parts[key].append(model_latent(torch.from_numpy(images)))
        parts["instruction"].append(encode([sample.instruction for sample in edits]))
    return {key: torch.cat(values) for key, values in parts.items()}


def drop_conditions(
    instruction: torch.Tensor, image: torch.Tensor, empty: torch.Tensor, rng: np.random.Generator, share: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """InstructPix2Pix's condition dropout: per sample, the instruction only, the image only, or both are dropped,
    each with probability ``share``."""
    draw = torch.from_numpy(rng.random(instruction.shape[0]))
    no_text = (draw < share) | ((draw >= 2 * share) & (draw < 3 * share))
    no_image = (draw >= share) & (draw < 3 * share)
    instruction = instruction.clone()
    instruction[no_text] = empty
    return instruction, image * (~no_image).view(-1, 1, 1, 1)


def schedule(optimiser: torch.optim.Optimizer, config: dict[str, Any]) -> torch.optim.lr_scheduler.LRScheduler:
    warmup = torch.optim.lr_scheduler.LinearLR(optimiser, 1 / config["warmup"], 1.0, config["warmup"])
    decay = torch.optim.lr_scheduler.LinearLR(
        optimiser, 1.0, config["final_lr_share"], config["steps"] - config["warmup"]
    )
    return torch.optim.lr_scheduler.SequentialLR(optimiser, [warmup, decay], [config["warmup"]])


@torch.inference_mode(False)
@torch.enable_grad()
def train_instruction_unet(config: dict[str, Any], clip: Any) -> dict[str, torch.Tensor]:
    """Train from scratch; return the EMA weights (gradients on even inside a ComfyUI executor)."""
    torch.manual_seed(config["seed"])
    rng = np.random.default_rng(config["seed"])
    model = instruction_unet.build_model(trainable=True)
    network = model.diffusion_model.train().requires_grad_(True)
    ema = copy.deepcopy(network).eval().requires_grad_(False)
    sigmas = model.model_sampling.sigmas.float()
    encode = train.CaptionEncoder(clip)
    empty = encode([""])[0]
    optimiser = torch.optim.Adam(network.parameters(), lr=config["lr"])
    scheduler = schedule(optimiser, config)
    start = time.perf_counter()
    data = dataset([config["seed"] * 1_000_003 + i for i in range(config["dataset"])], encode)
    log.warning("lab instruction dataset: %d edits in %.0f s", config["dataset"], time.perf_counter() - start)
    for step in range(config["steps"]):
        chosen = torch.from_numpy(rng.integers(0, config["dataset"], config["batch"]))
        target = data["target"][chosen]
        instruction, image = drop_conditions(
            data["instruction"][chosen], data["source"][chosen], empty, rng, config["dropout"]
        )
        t = torch.from_numpy(rng.integers(0, 1000, config["batch"]))
        sigma = sigmas[t].view(-1, 1, 1, 1)
        alpha, s = 1 / (1 + sigma**2).sqrt(), sigma / (1 + sigma**2).sqrt()
        noise = torch.randn_like(target)
        noisy = torch.cat([alpha * target + s * noise, image], dim=1)
        loss = torch.nn.functional.mse_loss(network.velocity(noisy, t.float(), instruction), alpha * noise - s * target)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), config["clip"])
        optimiser.step()
        scheduler.step()
        with torch.no_grad():
            decay = min(config["ema"], (step + 1) / (step + 10))
            for averaged, current in zip(ema.parameters(), network.parameters(), strict=True):
                averaged.lerp_(current, 1 - decay)
        if step % 100 == 0 or step == config["steps"] - 1:
            elapsed = time.perf_counter() - start
            log.warning(
                "lab instruction unet step %d/%d loss %.4f (%.0f s)", step, config["steps"], loss.item(), elapsed
            )
    return {key: value for key, value in ema.state_dict().items() if not key.startswith("lab_")}


def instruction_unet_state(clip: Any | None = None) -> dict[str, torch.Tensor]:
    """The trained instruction UNet's weights, from the cache or trained now (minutes on 2 cores)."""
    config = {**TRAINING, "text_encoder": train.TEXT_ENCODER_CONFIG}

    def build() -> dict[str, torch.Tensor]:
        encoder = clip if clip is not None else text_encoder.build_clip(train.text_encoder_state())
        return train_instruction_unet(TRAINING, encoder)

    return cache.cached_state_dict("instruction_unet", config, build, SOURCE_FILES)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    instruction_unet_state(text_encoder.build_clip(train.text_encoder_state()))
    print(f"lab instruction model ready in {time.perf_counter() - start:.0f} s under {cache.cache_dir()}")


if __name__ == "__main__":
    main()
