"""Run arbitrary computation on a model prepared exactly as for sampling, and predict noise from its conds.

``run_prepared`` hands a ``comfy.samplers.Sampler`` subclass to a ``CFGGuider``: the guider loads the model (and
ControlNets, hooks, wrappers), processes the conds and the latent (``process_latent_in``), then calls our
sampler, which runs the given work instead of a sampling loop (the trick of ComfyUI's own TrainSampler). What
the work returns goes through ``process_latent_out`` like a sampled latent, and the model is cleaned up after.

``GuiderNoisePredictor`` implements ``core.s2edit.null_text_inversion.GuidedPredictor`` on the prepared guider with
``comfy.samplers.calc_cond_batch``, so model patches, attention patches, hooks and ControlNets act on every UNet
call as in sampling. CFG itself is computed in ``core`` (plain CFG): ``sampler_cfg_function`` and post-CFG patches
(RescaleCFG and the like) are not applied, because inversion and replay must use one and the same formula.
"""

from collections.abc import Callable

import comfy.conds
import comfy.model_management
import comfy.samplers
import torch
from comfy.model_patcher import ModelPatcher

Work = Callable[[comfy.samplers.CFGGuider, dict, torch.Tensor], torch.Tensor]


class _PreparedWork(comfy.samplers.Sampler):
    def __init__(self, work: Work) -> None:
        self.work = work

    def sample(
        self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None, disable_pbar=False
    ) -> torch.Tensor:
        return self.work(model_wrap, extra_args["model_options"], latent_image)


def run_prepared(
    model: ModelPatcher, positive: list, negative: list, latent: torch.Tensor, *, sigmas: torch.Tensor, work: Work
) -> torch.Tensor:
    """``work(guider, model_options, model-space latent)`` with ``model`` prepared for sampling over ``sigmas``.

    Returns what ``work`` returns, converted back to ComfyUI's latent convention (``process_latent_out``).
    """
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(positive, negative)
    return guider.sample(torch.zeros_like(latent), latent, _PreparedWork(work), sigmas, disable_pbar=True, seed=0)


def require_gradients(model_options: dict, task: str) -> None:
    """Refuse ``task``, which backpropagates through the UNet, on a model spread over several GPUs.

    A MultiGPU node makes the guider put ``multigpu_clones`` in the model options; ``calc_cond_batch`` then runs
    the UNet in worker threads under ``torch.no_grad``, so no gradient would reach what ``task`` optimises.
    """
    clones = model_options.get("multigpu_clones")
    if clones:
        raise ValueError(
            f"model: {task} backpropagates through the UNet, but this MODEL is split over {len(clones)} devices by "
            "a MultiGPU node, whose worker threads run the UNet without gradients; connect the model without the "
            "MultiGPU node"
        )


def with_cross_attention(cond: dict, embedding: torch.Tensor) -> dict:
    """A copy of a processed cond whose text embedding (``c_crossattn``) is ``embedding``."""
    model_conds = dict(cond["model_conds"])
    model_conds["c_crossattn"] = comfy.conds.CONDCrossAttn(embedding)
    return {**cond, "model_conds": model_conds}


def cross_attention_of(conds: list[dict]) -> torch.Tensor:
    """The text embedding of the first processed cond of a list."""
    return conds[0]["model_conds"]["c_crossattn"].cond


class GuiderNoisePredictor:
    """ε̂ of the guider's ``positive`` (C) and ``negative`` (∅) conds for σ-space samples, via calc_cond_batch.

    Every call checks ComfyUI's interrupt flag first, so Cancel stops a long optimisation within one UNet call.
    """

    def __init__(self, guider: comfy.samplers.CFGGuider, model_options: dict) -> None:
        self.model = guider.inner_model
        self.model_options = model_options
        self.positive = guider.conds["positive"]
        self.negative = guider.conds["negative"]

    def _negative(self, null: torch.Tensor | None) -> list[dict]:
        return self.negative if null is None else [with_cross_attention(cond, null) for cond in self.negative]

    def _predict(self, conds: list[list[dict]], x: torch.Tensor, sigma: torch.Tensor) -> list[torch.Tensor]:
        comfy.model_management.throw_exception_if_processing_interrupted()
        sigmas = sigma.reshape(1).expand(x.shape[0])
        denoised = comfy.samplers.calc_cond_batch(self.model, conds, x, sigmas, self.model_options)
        return [(x - x0) / sigma for x0 in denoised]

    def conditional(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return self._predict([self.positive], x, sigma)[0]

    def unconditional(self, x: torch.Tensor, sigma: torch.Tensor, null: torch.Tensor | None) -> torch.Tensor:
        return self._predict([self._negative(null)], x, sigma)[0]

    def both(
        self, x: torch.Tensor, sigma: torch.Tensor, null: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        eps_cond, eps_uncond = self._predict([self.positive, self._negative(null)], x, sigma)
        return eps_cond, eps_uncond
