"""The Delta Mapper file: one safetensors file with the mapper weights, the relevance rows and a JSON config.

Tensors: ``mapper.<official parameter name>`` (e.g. ``mapper.sm_fine.mapping.1.weight``) and ``relevance``
``[D, d]``. Metadata ``precise_edit.delta_mapper`` holds the JSON of the level sizes, code scale σ, the fingerprints
of the joint CLIP and of the conditioning model, and the training record (images, steps, learning rate, losses).
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import safe_open

from ..files.atomic_file import save_safetensors_atomically
from .delta_edit import DeltaEditModel
from .delta_mapper import DeltaMapper, DeltaMapperConfig

METADATA_KEY = "precise_edit.delta_mapper"
FORMAT_VERSION = 1
MAPPER_PREFIX = "mapper."


def save_delta_edit_model(model: DeltaEditModel, path: Path) -> None:
    """Write ``model`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    tensors = {
        MAPPER_PREFIX + key: value.detach().cpu().contiguous() for key, value in model.mapper.state_dict().items()
    }
    tensors["relevance"] = model.relevance.detach().float().cpu().contiguous()
    info = {
        "version": FORMAT_VERSION,
        "config": model.mapper.config.to_dict(),
        "code_scale": model.code_scale,
        "clip_fingerprint": model.clip_fingerprint,
        "target_fingerprint": model.target_fingerprint,
        "training": model.training,
    }
    save_safetensors_atomically(tensors, path, {METADATA_KEY: json.dumps(info), "format": "pt"})


def load_delta_edit_model(path: Path) -> DeltaEditModel:
    """Read a file written by ``save_delta_edit_model``; other safetensors files get a clear ValueError."""
    path = Path(path)
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        if METADATA_KEY not in metadata:
            raise ValueError(f"{path.name} is not a Precise Edit Delta Mapper file (no {METADATA_KEY} metadata)")
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    info = json.loads(metadata[METADATA_KEY])
    if info.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path.name}: Delta Mapper format {info.get('version')} is not supported here")
    config = DeltaMapperConfig.from_dict(info["config"])
    mapper = DeltaMapper(config, device="meta")
    weights = {
        key.removeprefix(MAPPER_PREFIX): value for key, value in tensors.items() if key.startswith(MAPPER_PREFIX)
    }
    try:
        mapper.load_state_dict(weights, strict=True, assign=True)
    except RuntimeError as error:
        raise ValueError(f"{path.name}: the mapper weights do not fit its config: {error}") from None
    mapper.eval()
    relevance = tensors.get("relevance")
    if relevance is None or tuple(relevance.shape) != (config.target_dim, config.clip_dim):
        raise ValueError(f"{path.name}: no relevance matrix of shape {(config.target_dim, config.clip_dim)}")
    return DeltaEditModel(
        mapper=mapper,
        code_scale=float(info["code_scale"]),
        relevance=relevance,
        clip_fingerprint=str(info.get("clip_fingerprint", "")),
        target_fingerprint=str(info.get("target_fingerprint", "")),
        training=dict(info.get("training", {})),
    )
