"""Train the DeltaEdit lab's models, cached by hash: the joint image–text encoder and the unCLIP-style UNet.

``python -m lab.train_deltaedit [--threads N]`` trains (or finds in the cache) both and prints the time taken.

1. Toy CLIP (``lab.models.toy_clip``): CLIP's symmetric InfoNCE on toy portraits and their captions,

       L = ½ [CE(τ⁻¹ Î Tᵀ, diag) + CE(τ⁻¹ T Îᵀ, diag)],    Î, T the L2-normalised image and text features,

   with a learned temperature (CLIP's log-parametrised logit scale, initialised at 1/0.07). Each caption names a
   random subset of the portrait's attributes (``lab.portrait_captions``), so one-attribute texts embed too, and
   each image also meets a hard negative, its caption with one attribute changed (NegCLIP's extra text rows): in a
   batch of 64 random portraits colour alone tells most captions apart, and without them the binary attributes
   (glasses, hat, smile) stayed near chance.
2. unCLIP UNet (``lab.models.unclip_unet``): the part-1 UNet fine-tuned to read a CLIP image embedding through
   the ADM input as SD 2.1 unCLIP does. The embedding is the toy CLIP vision tower's ``image_embeds`` computed by
   ComfyUI's CLIP_VISION, passed through the model's own noise augmentor at noise level 0 (what
   unCLIPConditioning gives with noise_augmentation 0); the text is always the empty prompt, so the image
   embedding is the only condition; 10 % of the samples lose it (all-zero ADM, what ComfyUI feeds a branch without
   unCLIP conditioning) for classifier-free guidance. The lab's shared loop (``lab.diffusion_training``).
"""

from __future__ import annotations

import argparse
import functools
import logging
import random
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lab import cache, diffusion_training, portrait_captions, train, world
from lab.models import text_encoder, toy_clip, unclip_unet
from lab.models.cell_latent import model_latent

TOY_CLIP_SOURCE_FILES = ("world.py", "portrait_captions.py", "models/toy_clip.py", "train_deltaedit.py")
UNCLIP_SOURCE_FILES = (*cache.SOURCE_FILES, *TOY_CLIP_SOURCE_FILES, "models/unclip_unet.py")
TOY_CLIP_TRAINING: dict[str, Any] = {
    "seed": 31,
    "steps": 700,
    "dataset": 1500,
    "batch": 64,
    "lr": 2e-3,
    "warmup": 30,
    "final_lr_share": 0.05,
    "phrase_share": 0.6,
    "full_caption_share": 0.3,
}
UNCLIP_TRAINING: dict[str, Any] = {
    "seed": 41,
    "steps": 300,
    "dataset": 1500,
    "batch": 32,
    "lr": 1e-3,
    "warmup": 20,
    "final_lr_share": 0.05,
    "embedding_dropout": 0.1,
    "ema": 0.99,
    "clip": 1.0,
}
# Portrait seeds of the training sets; the claims draw held-out portraits from HELD_OUT_SEEDS onwards.
TRAINING_SEEDS = 100_000
HELD_OUT_SEEDS = 900_000

log = logging.getLogger("lab.train_deltaedit")


@functools.lru_cache(maxsize=1)
def training_faces(count: int) -> list[world.Sample]:
    """The first ``count`` training portraits (rendered once per process: both models train on them)."""
    return [world.portrait(TRAINING_SEEDS + index) for index in range(count)]


def contrastive_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor) -> Any:
    """CLIP's symmetric InfoNCE over B images and their B captions; text rows past the first B are hard negatives
    (NegCLIP): extra wrong texts for each image, not queries of their own."""
    logits = (
        logit_scale.exp().clamp(max=100) * F.normalize(image_features, dim=-1) @ F.normalize(text_features, dim=-1).T
    )
    labels = torch.arange(logits.shape[0])
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits[:, : logits.shape[0]].T, labels)) / 2


@diffusion_training.gradients_on
def train_toy_clip(config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Train the joint encoder from scratch; return its weights."""
    rng = random.Random(config["seed"])
    model = toy_clip.build_model(seed=config["seed"]).train()
    tokenize = toy_clip.tokenizer()
    start = time.perf_counter()
    samples = training_faces(config["dataset"])
    pixels = toy_clip.pixel_values(torch.from_numpy(np.stack([sample.image for sample in samples])))
    faces = [sample.labels["face"] for sample in samples]
    log.warning("lab toy CLIP dataset: %d portraits in %.0f s", len(samples), time.perf_counter() - start)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config["lr"], weight_decay=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: diffusion_training.lr_factor(step, config))
    for step in range(config["steps"]):
        chosen = rng.sample(range(len(samples)), config["batch"])
        named = [
            portrait_captions.ATTRIBUTES
            if rng.random() < config["full_caption_share"]
            else portrait_captions.random_named(rng, config["phrase_share"])
            for _ in chosen
        ]
        captions = [portrait_captions.caption(faces[index], names) for index, names in zip(chosen, named, strict=True)]
        captions += [
            portrait_captions.hard_negative(faces[index], names, rng)
            for index, names in zip(chosen, named, strict=True)
        ]
        tokens = tokenize(captions, padding=True, return_tensors="pt")
        output = model(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"], pixel_values=pixels[chosen]
        )
        loss = contrastive_loss(output.image_embeds, output.text_embeds, model.logit_scale)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        scheduler.step()
        if step % 100 == 0 or step == config["steps"] - 1:
            log.warning(
                "lab toy CLIP step %d/%d loss %.4f (%.0f s)",
                step,
                config["steps"],
                loss.item(),
                time.perf_counter() - start,
            )
    return {key: value.detach() for key, value in model.state_dict().items() if not key.endswith("position_ids")}


def toy_clip_state() -> dict[str, torch.Tensor]:
    """The joint encoder's weights, from the cache or trained now."""
    build = lambda: train_toy_clip(TOY_CLIP_TRAINING)  # noqa: E731
    return cache.cached_state_dict("toy_clip", TOY_CLIP_TRAINING, build, TOY_CLIP_SOURCE_FILES)


def toy_clip_folder() -> Any:
    """The joint encoder written as a save_pretrained folder in the lab cache; returns its weights file."""
    state = toy_clip_state()
    return toy_clip.write_folder(state, cache.cache_dir() / toy_clip.FOLDER_NAME)


def cached_clip_vision() -> Any:
    """ComfyUI's CLIP_VISION of the trained joint encoder."""
    weights = toy_clip_folder()
    return toy_clip.clip_vision(toy_clip_state(), weights.parent / toy_clip.VISION_CONFIG_FILE)


def image_embeddings(clip_vision: Any, images: torch.Tensor) -> torch.Tensor:
    """``image_embeds`` ``[N, D]`` of IMAGE ``[N, H, W, 3]``, as CLIPVisionEncode computes them (in chunks)."""
    with torch.no_grad():
        return torch.cat(
            [clip_vision.encode_image(chunk, crop=True).image_embeds.float() for chunk in images.split(250)]
        )


class AdmVelocity(torch.nn.Module):
    """The UNet as the shared training loop calls it, ``velocity(x, t, context)``, with the ADM vectors of the
    current batch (set by the batch function) passed as ``y``."""

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network
        self.adm: torch.Tensor | None = None

    def velocity(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.network.velocity(x, timesteps, context, y=self.adm)


@diffusion_training.gradients_on
def train_unclip_unet(
    config: dict[str, Any], clip: Any, clip_vision: Any, part1: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Fine-tune the part-1 UNet (``part1``) to read image embeddings through the ADM input; return the EMA."""
    torch.manual_seed(config["seed"])
    rng = np.random.default_rng(config["seed"])
    model = unclip_unet.build_model(trainable=True)
    unclip_unet.load_part1(model.diffusion_model, part1)
    wrapped = AdmVelocity(model.diffusion_model)
    empty = train.CaptionEncoder(clip)([""])
    start = time.perf_counter()
    samples = training_faces(config["dataset"])
    images = torch.from_numpy(np.stack([sample.image for sample in samples]))
    latents = model_latent(images)
    with torch.no_grad():
        adm = unclip_unet.adm_input(model, image_embeddings(clip_vision, images))
    log.warning("lab unCLIP dataset: %d portraits in %.0f s", len(samples), time.perf_counter() - start)

    def batch() -> diffusion_training.Batch:
        chosen = torch.from_numpy(rng.integers(0, len(samples), config["batch"]))
        kept = torch.from_numpy(rng.random(config["batch"]) >= config["embedding_dropout"]).view(-1, 1)
        wrapped.adm = adm[chosen] * kept
        return diffusion_training.Batch(latents[chosen], empty.expand(config["batch"], -1, -1))

    sigmas = model.model_sampling.sigmas.float()
    (weights,) = diffusion_training.train(wrapped, batch, sigmas, config, rng, "lab unCLIP unet")
    return {key.removeprefix("network."): value for key, value in weights.items()}


def unclip_unet_state(clip: Any | None = None) -> dict[str, torch.Tensor]:
    """The unCLIP UNet's weights, from the cache or fine-tuned now from the part-1 UNet (whose recipe and sources
    are part of the key, so a retrained part-1 model retrains this one)."""
    config = {
        **UNCLIP_TRAINING,
        "part1": {**train.UNET_TRAINING, "text_encoder": train.TEXT_ENCODER_CONFIG},
        "toy_clip": TOY_CLIP_TRAINING,
    }

    def build() -> dict[str, torch.Tensor]:
        encoder = clip if clip is not None else text_encoder.build_clip(train.text_encoder_state())
        return train_unclip_unet(UNCLIP_TRAINING, encoder, cached_clip_vision(), train.unet_state(encoder))

    return cache.cached_state_dict("unclip_unet", config, build, UNCLIP_SOURCE_FILES)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    toy_clip_folder()
    unclip_unet_state(text_encoder.build_clip(train.text_encoder_state()))
    print(f"lab DeltaEdit models ready in {time.perf_counter() - start:.0f} s under {cache.cache_dir()}")


if __name__ == "__main__":
    main()
