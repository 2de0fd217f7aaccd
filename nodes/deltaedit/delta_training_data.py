"""The Delta Mapper's training set: images from a folder and/or an IMAGE batch, with cached embeddings.

Every image is encoded twice, by the joint CLIP (DeltaSpace, ĉ) and by the conditioning CLIP vision model (the
code s = ``image_embeds``, centre crop as CLIPVisionEncode's default). The pair is cached in memory under the two
models' fingerprints and the image's identity (file path, size and modification time, or a hash of the pixels), so
training again on the same images (other steps, learning rate or seed) encodes nothing.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import folder_paths
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ...core.deltaedit.joint_clip import tensor_fingerprint
from .joint_clip_model import JointClipModel

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
CAPTION_EXTENSIONS = {".txt", ".caption", ".json"}
CACHE_LIMIT = 50_000

_cache: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()


@dataclass(frozen=True)
class TrainingEmbeddings:
    """Codes ``[N, D]`` and DeltaSpace embeddings ``[N, d]`` of N images; ``encoded`` of them were not cached."""

    codes: torch.Tensor
    clip: torch.Tensor
    names: list[str]
    encoded: int


def clip_vision_fingerprint(clip_vision) -> str:
    """Fingerprint of a ComfyUI CLIP_VISION: its projection (or final norm when it has none)."""
    model = clip_vision.model
    projection = getattr(model, "visual_projection", None)
    weight = projection.weight if isinstance(projection, torch.nn.Module) else model.vision_model.post_layernorm.weight
    return tensor_fingerprint(weight)


def resolve_folder(folder: str) -> Path:
    """An absolute folder, or one relative to ComfyUI's input directory."""
    path = Path(folder.strip()).expanduser()
    if not path.is_absolute():
        path = Path(folder_paths.get_input_directory()) / path
    if not path.is_dir():
        raise ValueError(f"folder {folder!r}: no such folder ({path})")
    return path


def folder_image_files(path: Path) -> list[Path]:
    """The folder's image files, sorted; hidden files and caption sidecars are skipped, anything else is refused."""
    files = sorted(entry for entry in path.iterdir() if entry.is_file() and not entry.name.startswith("."))
    others = [entry.name for entry in files if entry.suffix.lower() not in IMAGE_EXTENSIONS | CAPTION_EXTENSIONS]
    if others:
        raise ValueError(
            f"folder {path} holds files that are not images: {', '.join(others[:5])}; accepted are "
            f"{', '.join(sorted(IMAGE_EXTENSIONS))} (and .txt/.caption/.json captions, which are ignored)"
        )
    return [entry for entry in files if entry.suffix.lower() in IMAGE_EXTENSIONS]


def read_image(path: Path) -> torch.Tensor:
    """An image file as IMAGE ``[1, H, W, 3]`` in [0, 1] (EXIF orientation applied)."""
    try:
        with Image.open(path) as image:
            rgb = ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise ValueError(f"{path.name} in {path.parent} could not be read as an image: {error}") from None
    return torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0)[None]


def _file_key(path: Path) -> tuple:
    stat = path.stat()
    return ("file", str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def _pixels_key(image: torch.Tensor) -> tuple:
    data = image.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
    return ("pixels", tuple(image.shape), hashlib.sha256(data).hexdigest())


def _remember(key: tuple, value: tuple[torch.Tensor, torch.Tensor]) -> None:
    _cache[key] = value
    _cache.move_to_end(key)
    while len(_cache) > CACHE_LIMIT:
        _cache.popitem(last=False)


def folder_signature(folder: str) -> str:
    """Names, sizes and modification times of a folder's files (changes when the training set changes)."""
    if not folder.strip():
        return ""
    try:
        path = resolve_folder(folder)
    except ValueError:
        return folder
    entries = sorted(path.iterdir())
    return "|".join(f"{e.name}:{e.stat().st_size}:{e.stat().st_mtime_ns}" for e in entries if e.is_file())


def training_embeddings(
    joint_clip: JointClipModel, clip_vision, folder: str, images: torch.Tensor | None
) -> TrainingEmbeddings:
    """Embeddings of every image of ``folder`` (if given) followed by every image of ``images`` (if given)."""
    sources: list[tuple[str, tuple, Callable[[], torch.Tensor]]] = []
    if folder.strip():
        for path in folder_image_files(resolve_folder(folder)):
            sources.append((path.name, _file_key(path), lambda path=path: read_image(path)))
    if images is not None:
        for index in range(images.shape[0]):
            image = images[index : index + 1]
            sources.append((f"images[{index}]", _pixels_key(image), lambda image=image: image))
    if len(sources) < 2:
        raise ValueError(
            f"the Delta Mapper trains on pairs of images and got {len(sources)}: give a folder with at least two "
            "images and/or an IMAGE batch"
        )
    models = (joint_clip.fingerprint, clip_vision_fingerprint(clip_vision))
    codes, clips, encoded = [], [], 0
    for _, key, load in sources:
        cached = _cache.get((models, key))
        if cached is None:
            image = load()
            cached = (
                clip_vision.encode_image(image, crop=True).image_embeds[0].float().cpu(),
                joint_clip.encode_images(image)[0],
            )
            _remember((models, key), cached)
            encoded += 1
        codes.append(cached[0])
        clips.append(cached[1])
    return TrainingEmbeddings(torch.stack(codes), torch.stack(clips), [name for name, _, _ in sources], encoded)
