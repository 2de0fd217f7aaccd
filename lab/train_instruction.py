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
import logging
import time
from typing import Any

import numpy as np
import torch

from lab import cache, diffusion_training, instruction_world, train
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
    "diffusion_training.py",
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


@diffusion_training.gradients_on
def train_instruction_unet(config: dict[str, Any], clip: Any) -> dict[str, torch.Tensor]:
    """Train from scratch; return the EMA weights."""
    torch.manual_seed(config["seed"])
    rng = np.random.default_rng(config["seed"])
    model = instruction_unet.build_model(trainable=True)
    encode = train.CaptionEncoder(clip)
    empty = encode([""])[0]
    start = time.perf_counter()
    data = dataset([config["seed"] * 1_000_003 + i for i in range(config["dataset"])], encode)
    log.warning("lab instruction dataset: %d edits in %.0f s", config["dataset"], time.perf_counter() - start)

    def batch() -> diffusion_training.Batch:
        chosen = torch.from_numpy(rng.integers(0, config["dataset"], config["batch"]))
        instruction, image = drop_conditions(
            data["instruction"][chosen], data["source"][chosen], empty, rng, config["dropout"]
        )
        return diffusion_training.Batch(data["target"][chosen], instruction, image)

    sigmas = model.model_sampling.sigmas.float()
    (weights,) = diffusion_training.train(model.diffusion_model, batch, sigmas, config, rng, "lab instruction unet")
    return weights


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
