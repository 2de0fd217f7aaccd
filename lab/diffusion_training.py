"""The lab's diffusion training loop, shared by every lab model: v-prediction on SD1's 1000-step schedule.

Each step draws a batch (the model's own: latents, context, an optional image condition), uniform timesteps t and
noise ε, and regresses the network's output on v = α ε − σ x₀ at x_t = α x₀ + σ ε (α² + σ² = 1). Adam with linear
warm-up and linear decay to ``final_lr_share``, gradient clipping over all trained parameters, and an exponential
moving average of the weights (its decay ramps up as (k + 1) / (k + 10) to ``ema``), which is what is returned.
A module trained beside the network (e.g. the text encoder producing the batch's context) gets its own learning rate.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

log = logging.getLogger("lab.diffusion_training")

Function = TypeVar("Function", bound=Callable[..., Any])


def gradients_on(function: Function) -> Function:
    """Run ``function`` with gradients on, even when a ComfyUI executor (which runs nodes under inference mode)
    reaches it through a lab loader on a fresh cache."""
    return torch.inference_mode(False)(torch.enable_grad()(function))


@dataclass
class Batch:
    """One step's training data: clean latents x₀, the cross-attention context, and channels concatenated to x_t
    (InstructPix2Pix's source-image latent), if the model takes any."""

    latents: torch.Tensor
    context: torch.Tensor
    image: torch.Tensor | None = None


def lr_factor(step: int, config: dict[str, Any]) -> float:
    """Linear warm-up over ``warmup`` steps, then linear decay to ``final_lr_share`` at ``steps``."""
    if step < config["warmup"]:
        return (step + 1) / config["warmup"]
    progress = (step - config["warmup"]) / max(1, config["steps"] - config["warmup"])
    return 1.0 - (1.0 - config["final_lr_share"]) * progress


@gradients_on
def train(
    network: torch.nn.Module,
    batch: Callable[[], Batch],
    sigmas: torch.Tensor,
    config: dict[str, Any],
    rng: np.random.Generator,
    label: str,
    companions: Sequence[tuple[torch.nn.Module, float]] = (),
) -> list[dict[str, torch.Tensor]]:
    """Train ``network`` (which has ``velocity(x, t, context)``) and each companion module (at its own learning rate)
    for ``config["steps"]``; return the EMA weights of the network, then of each companion."""
    modules = [network, *(module for module, _ in companions)]
    for module in modules:
        module.train().requires_grad_(True)
    averages = [copy.deepcopy(module).eval().requires_grad_(False) for module in modules]
    groups = [{"params": list(network.parameters()), "lr": config["lr"]}]
    groups += [{"params": list(module.parameters()), "lr": lr} for module, lr in companions]
    parameters = [parameter for group in groups for parameter in group["params"]]
    optimiser = torch.optim.Adam(groups)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: lr_factor(step, config))
    start = time.perf_counter()
    for step in range(config["steps"]):
        data = batch()
        size = data.latents.shape[0]
        t = torch.from_numpy(rng.integers(0, 1000, size))
        sigma = sigmas[t].view(-1, 1, 1, 1)
        alpha, s = 1 / (1 + sigma**2).sqrt(), sigma / (1 + sigma**2).sqrt()
        noise = torch.randn_like(data.latents)
        x_t = alpha * data.latents + s * noise
        if data.image is not None:
            x_t = torch.cat([x_t, data.image], dim=1)
        target = alpha * noise - s * data.latents
        loss = torch.nn.functional.mse_loss(network.velocity(x_t, t.float(), data.context), target)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, config["clip"])
        optimiser.step()
        scheduler.step()
        decay = min(config["ema"], (step + 1) / (step + 10))
        with torch.no_grad():
            for average, module in zip(averages, modules, strict=True):
                for averaged, current in zip(average.parameters(), module.parameters(), strict=True):
                    averaged.lerp_(current, 1 - decay)
        if step % 100 == 0 or step == config["steps"] - 1:
            elapsed = time.perf_counter() - start
            log.warning("%s step %d/%d loss %.4f (%.0f s)", label, step, config["steps"], loss.item(), elapsed)
    return [average.state_dict() for average in averages]
