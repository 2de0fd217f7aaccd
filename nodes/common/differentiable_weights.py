"""Backpropagate through a ComfyUI UNet whose weights are inference tensors, without copying them.

ComfyUI runs every node under ``torch.inference_mode()``, so the weights of a model loaded by a node are inference
tensors, and autograd refuses to save them for backward ("Inference tensors cannot be saved for backward"), which
it must do to send a gradient to the UNet's *input* (here: a text embedding) through every layer after it.
The stock trainer sidesteps this by registering a weight function on every layer, which makes ``comfy.ops`` copy
each weight on every forward pass; copying the model once costs its full size in memory as well.

Instead, while autograd records a UNet forward, each parameter is swapped for a normal tensor that shares its
storage (``Tensor.set_`` on a fresh tensor creates one without copying a byte) and does not require grad (the
loaded parameters do), so no weight gradient is computed either. The swap is undone right after the forward; the
graph keeps the aliases it saved for the backward pass. Forward passes without grad (sampling) run untouched.
"""

import torch
from comfy.model_patcher import ModelPatcher
from comfy.patcher_extension import WrappersMP

WRAPPER_KEY = "precise_edit.differentiable_weights"


def storage_alias(tensor: torch.Tensor) -> torch.Tensor:
    """A normal (non-inference) tensor without grad viewing the same memory as ``tensor``; no data is copied."""
    alias = torch.empty(0, dtype=tensor.dtype, device=tensor.device)
    return alias.set_(tensor.untyped_storage(), tensor.storage_offset(), tensor.size(), tensor.stride())


def _aliasable(parameter: torch.Tensor | None) -> bool:
    """Plain strided tensors only: quantised or other subclass weights are cast to new tensors by comfy.ops."""
    return type(parameter) in (torch.Tensor, torch.nn.Parameter) and parameter.layout == torch.strided


class DifferentiableWeights:
    """DIFFUSION_MODEL wrapper: while grad is enabled, the UNet runs on storage aliases of its parameters."""

    def __init__(self) -> None:
        self._aliases: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def alias(self, parameter: torch.Tensor) -> torch.Tensor:
        cached = self._aliases.get(id(parameter))
        if cached is None or cached[0] is not parameter:
            cached = (parameter, storage_alias(parameter))
            self._aliases[id(parameter)] = cached
        return cached[1]

    def __call__(self, executor, *args, **kwargs):
        if not torch.is_grad_enabled():
            return executor(*args, **kwargs)
        swapped: list[tuple[dict, str, torch.Tensor]] = []
        try:
            for module in executor.class_obj.modules():
                for name, parameter in module._parameters.items():
                    if _aliasable(parameter):
                        swapped.append((module._parameters, name, parameter))
                        module._parameters[name] = self.alias(parameter)
            return executor(*args, **kwargs)
        finally:
            for parameters, name, parameter in swapped:
                parameters[name] = parameter


def with_differentiable_weights(model: ModelPatcher) -> ModelPatcher:
    """A clone of ``model`` whose UNet can be backpropagated through under ComfyUI's inference mode."""
    patched = model.clone()
    patched.add_wrapper_with_key(WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY, DifferentiableWeights())
    return patched
