"""Train the lab's MCDM on paired portraits with the pack's own MCDM training step, cached by hash.

``python -m lab.train_mcdm [--threads N]`` trains (or finds in the cache) the model and prints the time taken.

As the paper fine-tunes Stable Diffusion, the UNet starts from the part-1 text-to-image UNet (``lab.train``), conv_in
widened to 8 channels with zero weights for the source latent (``nodes.mcdm.model_file.widen_conv_in``); the adapter
starts fresh. The pairs (``lab.portrait_pairs``) are written as a pairs folder and read back with the pack's
``load_pairs``; the frozen encoders (the lab CLIP, the cell VAE, the tiny CLIP vision of ``lab.models.mcdm``) encode
them once into the pack's ``TrainingSet``, and the pack's ``MCDMTraining`` runs the steps: its 5 % reconstruction
pairs, its 20 % condition dropout in four buckets (nulls as MCDM Guider feeds them: zero concat latent, a black image
for the embedding, the empty prompt), AdamW and gradient clipping. Two lab choices on top: the learning rate warms
up and decays linearly (a few hundred steps, not the release's 5e-6 over days), and the update is v-prediction's,
the parameterisation the part-1 UNet was trained in (``velocity_weighted``).
"""

from __future__ import annotations

import argparse
import copy
import functools
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from lab import cache, diffusion_training, portrait_pairs, train
from lab.models import mcdm as mcdm_model
from lab.models import text_encoder
from lab.models.cell_latent import model_latent

SOURCE_FILES = (
    *cache.SOURCE_FILES,
    "portrait_pairs.py",
    "models/instruction_unet.py",
    "models/mcdm.py",
    "train_mcdm.py",
    "../core/mcdm/training.py",
    "../core/mcdm/adapter.py",
    "../core/mcdm/pairs_folder.py",
)
VISION = {"seed": 17, "config": mcdm_model.VISION_CONFIG}
TRAINING: dict[str, Any] = {
    "seed": 31,
    "pairs": 600,
    "steps": 400,
    "batch": 32,
    "lr": 1e-3,
    "warmup": 20,
    "final_lr_share": 0.05,
    "ema": 0.99,
}
UNET_PREFIX = "unet."
ADAPTER_PREFIX = "adapter."
ENCODE_CHUNK = 64

log = logging.getLogger("lab.train_mcdm")


def vision_state() -> dict[str, torch.Tensor]:
    """The tiny CLIP vision tower's weights: seeded random (cached like every lab model)."""
    return cache.cached_state_dict(
        "clip_vision", VISION, lambda: mcdm_model.random_vision_state(VISION["seed"]), ("models/mcdm.py",)
    )


def velocity_weighted(network: torch.nn.Module, alphas_cumprod: torch.Tensor) -> Any:
    """The denoiser handed to the pack's ε-MSE step: ε̂ as the network returns it, with its gradient scaled by 1/ᾱ_t.

    The lab UNet returns ε̂ = √ᾱ_t v̂ + √(1−ᾱ_t) z_t, so ε − ε̂ = √ᾱ_t (v − v̂): the ε loss is the v loss weighted by
    ᾱ_t, which all but ignores the noisiest steps (ᾱ ≈ 0.005 at t = 999), where the part-1 model learned its layout.
    Scaling the gradient through ε̂ by 1/ᾱ_t makes the update exactly the v loss's; the loss value stays ε-MSE."""

    def denoiser(x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        eps = network(x, timesteps.float(), context)
        scale = (1.0 / alphas_cumprod.to(x.device)[timesteps]).view(-1, 1, 1, 1)
        return eps.detach() + (eps - eps.detach()) * scale

    return denoiser


def encode_pairs(folder: Path, clip: Any, vision: Any) -> tuple[Any, Any]:
    """The pack's TrainingSet and NullConditions of a pairs folder (lab CLIP, cell VAE, tiny CLIP vision)."""
    from precise_edit.core.mcdm.pairs_folder import load_pairs
    from precise_edit.core.mcdm.training import NullConditions, TrainingSet
    from precise_edit.nodes.mcdm.model_file import MCDMVision

    data = load_pairs(folder)
    encode = train.CaptionEncoder(clip)
    prompts = sorted(set(data.prompts) | set(data.source_prompts))
    texts = dict(zip(prompts, encode(prompts), strict=True))
    tower = MCDMVision(vision)
    chunks = range(0, len(data.sources), ENCODE_CHUNK)
    with torch.no_grad():
        hidden = torch.cat([tower.hidden_states(data.sources[i : i + ENCODE_CHUNK]) for i in chunks])
        training_set = TrainingSet(
            source_latents=model_latent(data.sources),
            target_latents=model_latent(data.targets),
            source_clip=hidden,
            prompts=torch.stack([texts[p] for p in data.prompts]),
            source_prompts=torch.stack([texts[p] for p in data.source_prompts]),
        )
        black = torch.zeros(1, *data.sources.shape[1:])
        nulls = NullConditions(
            concat_latent=torch.zeros_like(training_set.source_latents[0]),
            adapter_latent=model_latent(black)[0],
            clip=tower.hidden_states(black)[0],
            prompt=encode([""])[0],
        )
    return training_set, nulls


@torch.inference_mode(False)
@torch.enable_grad()
def train_mcdm(config: dict[str, Any], clip: Any, base_unet: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Fine-tune from ``base_unet``; return the UNet (``unet.*``) and adapter (``adapter.*``) weights."""
    from precise_edit.core.mcdm.adapter import MCDMAdapter
    from precise_edit.core.mcdm.training import MCDMTraining, TrainingOptions
    from precise_edit.nodes.mcdm.model_file import widen_conv_in

    start = time.perf_counter()
    vision = mcdm_model.build_vision(vision_state())
    with tempfile.TemporaryDirectory(prefix="lab-mcdm-pairs-") as folder:
        pairs = portrait_pairs.training_pairs(config["pairs"], config["seed"])
        data, nulls = encode_pairs(portrait_pairs.write_pairs_folder(Path(folder), pairs), clip, vision)
    log.warning("lab MCDM pairs: %d written and encoded in %.0f s", len(data), time.perf_counter() - start)
    torch.manual_seed(config["seed"])
    model = mcdm_model.build_unet(trainable=True)
    network = model.diffusion_model
    network.load_state_dict(widen_conv_in(base_unet))
    network.train().requires_grad_(True)
    adapter = MCDMAdapter(mcdm_model.adapter_config())
    alphas_cumprod = 1.0 / (1.0 + model.model_sampling.sigmas.float() ** 2)
    training = MCDMTraining(
        network,
        adapter,
        data=data,
        nulls=nulls,
        alphas_cumprod=alphas_cumprod,
        options=TrainingOptions(batch_size=config["batch"], learning_rate=config["lr"]),
        seed=config["seed"],
        denoiser=velocity_weighted(network, alphas_cumprod),
    )
    schedule = functools.partial(diffusion_training.lr_factor, config=config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(training.optimizer, schedule)
    averaged = [copy.deepcopy(part).eval().requires_grad_(False) for part in (network, adapter)]
    for step in range(config["steps"]):
        loss = training.step()
        scheduler.step()
        decay = min(config["ema"], (step + 1) / (step + 10))
        with torch.no_grad():
            for average, part in zip(averaged, (network, adapter), strict=True):
                for mean, current in zip(average.parameters(), part.parameters(), strict=True):
                    mean.lerp_(current, 1 - decay)
        if step % 50 == 0 or step == config["steps"] - 1:
            elapsed = time.perf_counter() - start
            log.warning("lab MCDM step %d/%d loss %.4f (%.0f s)", step, config["steps"], loss, elapsed)
    unet_average, adapter_average = averaged
    state = {UNET_PREFIX + k: v for k, v in unet_average.state_dict().items() if not k.startswith("lab_")}
    return state | {ADAPTER_PREFIX + k: v for k, v in adapter_average.state_dict().items()}


def mcdm_state(clip: Any | None = None) -> dict[str, torch.Tensor]:
    """The trained MCDM's weights (``unet.*``, ``adapter.*``), from the cache or trained now."""
    config = {**TRAINING, "unet": train.UNET_TRAINING, "text_encoder": train.TEXT_ENCODER_CONFIG, "vision": VISION}

    def build() -> dict[str, torch.Tensor]:
        encoder = clip if clip is not None else text_encoder.build_clip(train.text_encoder_state())
        return train_mcdm(TRAINING, encoder, train.unet_state(encoder))

    return cache.cached_state_dict("mcdm", config, build, SOURCE_FILES)


def load_mcdm(clip: Any | None = None) -> Any:
    """The pack's MCDM (PE_MCDM) of the lab, trained now or from the cache."""
    state = mcdm_state(clip)
    unet = {k.removeprefix(UNET_PREFIX): v for k, v in state.items() if k.startswith(UNET_PREFIX)}
    adapter = {k.removeprefix(ADAPTER_PREFIX): v for k, v in state.items() if k.startswith(ADAPTER_PREFIX)}
    return mcdm_model.build_mcdm(unet, adapter, mcdm_model.build_vision(vision_state()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    mcdm_state(text_encoder.build_clip(train.text_encoder_state()))
    print(f"lab MCDM ready in {time.perf_counter() - start:.0f} s under {cache.cache_dir()}")


if __name__ == "__main__":
    main()
