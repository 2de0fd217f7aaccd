"""The SAM_MODEL value: a segment-anything ``Sam`` kept on the offload device and lent to the GPU for one run.

SAM checkpoints live in ``models/sams`` (the folder Impact Pack uses; registered here with ``.pth``/``.pt``/
``.safetensors`` when no other pack did). Impact Pack's SAM_MODEL (a wrapper whose ``.model`` is a ``Sam``) and a
bare ``Sam`` are accepted wherever ours is.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import comfy.model_management
import torch
from segment_anything.modeling import Sam

from ...core.zone.sam_architecture import SamArchitecture
from ..common.model_folders import register_model_folder

SAMS = "sams"


@dataclass(frozen=True)
class SamModel:
    """A loaded SAM: the module, its architecture (variant vit_b/vit_l/vit_h/custom) and the file it came from."""

    model: Sam
    architecture: SamArchitecture
    name: str


def sam_module(value: object, name: str) -> Sam:
    """The ``Sam`` inside a SAM_MODEL from this pack, Impact Pack, or a bare ``Sam``."""
    if isinstance(value, Sam):
        return value
    inner = getattr(value, "model", None)
    if isinstance(inner, Sam):
        return inner
    raise ValueError(
        f"{name} must be a SAM_MODEL holding a segment-anything Sam (SAM Loader); got {type(value).__name__}"
    )


@contextmanager
def on_compute_device(sam: Sam, working_bytes: int) -> Iterator[torch.device]:
    """Move ``sam`` to ComfyUI's torch device (freeing what it needs first) and back to the offload device after."""
    device = comfy.model_management.get_torch_device()
    home = next(sam.parameters()).device
    comfy.model_management.free_memory(comfy.model_management.module_size(sam) + working_bytes, device)
    sam.to(device)
    try:
        yield device
    finally:
        sam.to(home)


register_model_folder(SAMS, (".safetensors", ".pth", ".pt"))
