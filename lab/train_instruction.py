"""Fine-tune the lab's instruction UNets from the part-1 text-to-image UNet (InstructPix2Pix's recipe on the toy
world's edits, then MagicBrush's stand-in from it), cached by hash.

``python -m lab.train_instruction [--threads N]`` trains (or finds in the cache) both models and prints the time taken.

Recipe: InstructPix2Pix's. The network starts from the part-1 UNet's weights (``lab.train.unet_state``), its first
convolution widened from 4 to 8 input channels with the extra channels' weights zero, so that at step 0 it is the
text-to-image model, whose cross-attention already ties words to places. It is then fine-tuned on the edits with
the part-1 objective (``lab.diffusion_training``, v-prediction): the noisy target z_t and the source latent c_I are
concatenated and the network predicts v = α ε − σ z₀ given the instruction c_T. Condition dropout makes the
three-branch guidance possible: each sample independently loses its instruction only (empty prompt), its image only
(all-zero latent) or both, each with ``dropout`` (InstructPix2Pix drops each 5 %; 10 % here, so that the null
branches get enough of a few hundred steps). MagicBrush (InstructPix2Pix fine-tuned on a smaller, manually
annotated, more local set) is stood in for by the instruction UNet fine-tuned further on a smaller
set of other edits, half of them removals (``MAGICBRUSH``).
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
    "steps": 300,
    "dataset": 2000,
    "batch": 32,
    "lr": 1e-3,
    "warmup": 20,
    "final_lr_share": 0.05,
    "dropout": 0.1,
    "ema": 0.995,
    "clip": 1.0,
}
MAGICBRUSH: dict[str, Any] = {
    **TRAINING,
    "seed": 22,
    "steps": 100,
    "dataset": 600,
    "warmup": 10,
    "action_shares": {"change": 0.25, "add": 0.25, "remove": 0.5},
}
FIRST_CONV = "input_blocks.0.0.weight"

log = logging.getLogger("lab.train_instruction")


def widened(text_to_image: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The part-1 UNet's weights with its first convolution taking 8 channels, the source image's 4 weighted zero
    (InstructPix2Pix's initialisation: at first the image condition changes nothing)."""
    weight = text_to_image[FIRST_CONV]
    return {**text_to_image, FIRST_CONV: torch.cat([weight, torch.zeros_like(weight)], dim=1)}


def edit_actions(config: dict[str, Any], count: int) -> list[str | None]:
    """The action of each training edit: drawn with ``config["action_shares"]`` (weights per action), or from each
    edit's seed (even shares) when the config has none."""
    shares = config.get("action_shares")
    if shares is None:
        return [None] * count
    weights = np.array([shares[action] for action in instruction_world.ACTIONS], dtype=np.float64)
    drawn = np.random.default_rng(config["seed"] + 1).choice(len(weights), count, p=weights / weights.sum())
    return [instruction_world.ACTIONS[index] for index in drawn]


def dataset(
    seeds: list[int], encode: train.CaptionEncoder, actions: list[str | None] | None = None
) -> dict[str, torch.Tensor]:
    """Source and target latents and encoded instructions of the edits of ``seeds`` (``actions[i]`` the action of
    the i-th, None or absent: drawn from its seed)."""
    actions = actions if actions is not None else [None] * len(seeds)
    parts: dict[str, list[torch.Tensor]] = {"source": [], "target": [], "instruction": []}
    for start in range(0, len(seeds), 250):
        chunk = zip(seeds[start : start + 250], actions[start : start + 250], strict=True)
        edits = [instruction_world.edit(seed, action) for seed, action in chunk]
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
def train_instruction_unet(
    config: dict[str, Any], clip: Any, initial: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Fine-tune the 8-channel UNet from ``initial`` (its weights); return the EMA weights."""
    torch.manual_seed(config["seed"])
    rng = np.random.default_rng(config["seed"])
    model = instruction_unet.build_model(trainable=True)
    model.diffusion_model.load_state_dict(initial)
    encode = train.CaptionEncoder(clip)
    empty = encode([""])[0]
    start = time.perf_counter()
    seeds = [config["seed"] * 1_000_003 + i for i in range(config["dataset"])]
    data = dataset(seeds, encode, edit_actions(config, len(seeds)))
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
    """The instruction UNet's weights (InstructPix2Pix's stand-in): fine-tuned from the part-1 UNet, from the cache
    or trained now (minutes on 2 cores)."""
    config = {**TRAINING, "text_encoder": train.TEXT_ENCODER_CONFIG}

    def build() -> dict[str, torch.Tensor]:
        encoder = clip if clip is not None else text_encoder.build_clip(train.text_encoder_state())
        return train_instruction_unet(TRAINING, encoder, widened(train.unet_state(encoder)))

    return cache.cached_state_dict("instruction_unet", config, build, SOURCE_FILES)


def magicbrush_state(clip: Any | None = None) -> dict[str, torch.Tensor]:
    """MagicBrush's stand-in: the instruction UNet fine-tuned further on a different mix of the same edits
    (``MAGICBRUSH``), from the cache or trained now."""
    config = {**MAGICBRUSH, "instruction_unet": TRAINING, "text_encoder": train.TEXT_ENCODER_CONFIG}

    def build() -> dict[str, torch.Tensor]:
        encoder = clip if clip is not None else text_encoder.build_clip(train.text_encoder_state())
        return train_instruction_unet(MAGICBRUSH, encoder, instruction_unet_state(encoder))

    return cache.cached_state_dict("instruction_unet_magicbrush", config, build, SOURCE_FILES)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    clip = text_encoder.build_clip(train.text_encoder_state())
    instruction_unet_state(clip)
    magicbrush_state(clip)
    print(f"lab instruction models ready in {time.perf_counter() - start:.0f} s under {cache.cache_dir()}")


if __name__ == "__main__":
    main()
