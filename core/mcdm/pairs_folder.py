"""A folder of MCDM training pairs in the official layout, read, validated and appended to.

Layout (bytedance/feature-preserve-portrait-editing, ``data/outfit/train``)::

    <folder>/condition/<id>.png   the source x_A
    <folder>/gt/<id>.png          the ground truth x_B
    <folder>/prompt.json          one JSON object per line:
        {"source": "condition/<id>.png", "target": "gt/<id>.png", "prompt": <target prompt>, "source_prompt": ...}

Reading validates everything before anything is used: every line parses and has the four string keys, the files
exist inside the folder and decode, x_A and x_B have the same size, and the size is a multiple of the VAE factor.
All problems are reported at once, with line numbers. Writing never leaves a half pair: both images go through
temporary files renamed into place, then prompt.json is rewritten the same way with the new line appended.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..files.atomic_file import write_atomically

PROMPT_FILE = "prompt.json"
SOURCE_DIR = "condition"
TARGET_DIR = "gt"
KEYS = ("source", "target", "prompt", "source_prompt")
SIZE_MULTIPLE = 8


class PairsFolderError(ValueError):
    """A pairs folder that cannot be used, with every problem found."""


@dataclass(frozen=True)
class PairRecord:
    """One line of prompt.json: image paths relative to the folder, the target prompt and the source prompt."""

    source: str
    target: str
    prompt: str
    source_prompt: str

    def line(self) -> str:
        return json.dumps(
            {"source": self.source, "target": self.target, "prompt": self.prompt, "source_prompt": self.source_prompt}
        )


@dataclass(frozen=True)
class PairsData:
    """A validated folder loaded as float images in [0, 1], shape (N, H, W, 3), and the prompts per pair."""

    sources: torch.Tensor
    targets: torch.Tensor
    prompts: list[str]
    source_prompts: list[str]


def parse_prompt_lines(text: str, name: str = PROMPT_FILE) -> list[tuple[int, PairRecord]]:
    """(line number, record) for each line of a prompt.json text (blank lines skipped); a PairsFolderError listing
    every bad line by number otherwise."""
    records: list[tuple[int, PairRecord]] = []
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
        except json.JSONDecodeError as error:
            problems.append(f"{name} line {number}: not valid JSON ({error.msg})")
            continue
        if not isinstance(entry, dict):
            problems.append(f"{name} line {number}: expected a JSON object with keys {', '.join(KEYS)}")
            continue
        missing = [key for key in KEYS if not isinstance(entry.get(key), str)]
        if missing:
            problems.append(f"{name} line {number}: missing or non-string {', '.join(missing)}")
            continue
        records.append((number, PairRecord(*(entry[key] for key in KEYS))))
    if problems:
        raise PairsFolderError("\n".join(problems))
    return records


def check_image_size(width: int, height: int, what: str, multiple: int = SIZE_MULTIPLE) -> None:
    """A PairsFolderError unless both sides are positive multiples of ``multiple`` (the VAE downscale factor)."""
    if width <= 0 or height <= 0 or width % multiple or height % multiple:
        raise PairsFolderError(
            f"{what} is {width}×{height}: width and height must be multiples of {multiple} "
            f"(the VAE works on {multiple}×{multiple} pixel cells; 64 keeps every UNet level whole)"
        )


def _inside(folder: Path, relative: str) -> Path | None:
    path = (folder / relative).resolve()
    return path if folder.resolve() in path.parents else None


def _image_size(path: Path) -> tuple[int, int] | None:
    try:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            return image.size
    except (OSError, SyntaxError, ValueError):
        return None


def read_pairs(folder: Path | str, multiple: int = SIZE_MULTIPLE) -> list[PairRecord]:
    """The validated records of a pairs folder; a PairsFolderError with every problem (line numbers) otherwise."""
    folder = Path(folder)
    prompt_file = folder / PROMPT_FILE
    if not prompt_file.is_file():
        raise PairsFolderError(
            f"{folder} is not a pairs folder: {PROMPT_FILE} is missing (expected {SOURCE_DIR}/, {TARGET_DIR}/ and "
            f"{PROMPT_FILE} with one JSON line per pair)"
        )
    numbered = parse_prompt_lines(prompt_file.read_text(encoding="utf-8"))
    if not numbered:
        raise PairsFolderError(f"{prompt_file} lists no pairs")
    problems: list[str] = []
    sizes: dict[tuple[int, int], int] = {}
    for number, record in numbered:
        found: dict[str, tuple[int, int]] = {}
        for role in ("source", "target"):
            relative = getattr(record, role)
            path = _inside(folder, relative)
            if path is None:
                problems.append(f"{PROMPT_FILE} line {number}: {role} {relative!r} points outside the folder")
            elif not path.is_file():
                problems.append(f"{PROMPT_FILE} line {number}: {role} file {relative} is missing")
            elif (size := _image_size(path)) is None:
                problems.append(f"{PROMPT_FILE} line {number}: {role} file {relative} is not a readable image")
            else:
                found[role] = size
        if len(found) < 2:
            continue
        if found["source"] != found["target"]:
            (sw, sh), (tw, th) = found["source"], found["target"]
            problems.append(
                f"{PROMPT_FILE} line {number}: {record.source} is {sw}×{sh} but {record.target} is {tw}×{th}; "
                "a source and its target must have the same size"
            )
            continue
        try:
            check_image_size(*found["source"], f"{PROMPT_FILE} line {number}: {record.source}", multiple)
        except PairsFolderError as error:
            problems.append(str(error))
            continue
        sizes.setdefault(found["source"], number)
    if len(sizes) > 1:
        listed = ", ".join(f"{w}×{h} (first on line {n})" for (w, h), n in sizes.items())
        problems.append(f"pairs of different sizes ({listed}): resize them to one size so they can be batched")
    if problems:
        raise PairsFolderError(f"{folder}:\n" + "\n".join(problems))
    return [record for _, record in numbered]


def _load_rgb(path: Path) -> torch.Tensor:
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(pixels.copy())


def load_pairs(folder: Path | str, multiple: int = SIZE_MULTIPLE) -> PairsData:
    """Validate the folder (``read_pairs``), then load every pair."""
    folder = Path(folder)
    records = read_pairs(folder, multiple)
    return PairsData(
        sources=torch.stack([_load_rgb(folder / r.source) for r in records]),
        targets=torch.stack([_load_rgb(folder / r.target) for r in records]),
        prompts=[r.prompt for r in records],
        source_prompts=[r.source_prompt for r in records],
    )


def _to_pil(image: torch.Tensor) -> Image.Image:
    pixels = (image.detach().float().cpu().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).numpy()
    return Image.fromarray(pixels[..., :3], "RGB")


def next_pair_id(folder: Path, records: list[PairRecord]) -> int:
    """One more than the largest numeric file stem in prompt.json, condition/ and gt/ (1 for a new folder)."""
    stems = [Path(r.source).stem for r in records] + [Path(r.target).stem for r in records]
    for sub in (SOURCE_DIR, TARGET_DIR):
        stems += [p.stem for p in (folder / sub).glob("*.png")]
    return max((int(s) for s in stems if s.isdigit()), default=0) + 1


def append_pairs(
    folder: Path | str, sources: torch.Tensor, targets: torch.Tensor, *, prompt: str, source_prompt: str
) -> list[PairRecord]:
    """Write each (x_A, x_B) of two (B, H, W, C) batches as a new pair, then append their lines to prompt.json.

    An existing prompt.json must parse (a PairsFolderError, nothing written, otherwise). Returns the new records.
    """
    folder = Path(folder)
    if sources.shape != targets.shape:
        raise PairsFolderError(f"x_A {tuple(sources.shape)} and x_B {tuple(targets.shape)} differ in shape")
    check_image_size(sources.shape[2], sources.shape[1], "each half of the canvas")
    prompt_file = folder / PROMPT_FILE
    existing = prompt_file.read_text(encoding="utf-8") if prompt_file.is_file() else ""
    records = [record for _, record in parse_prompt_lines(existing)]
    first = next_pair_id(folder, records)
    new: list[PairRecord] = []
    for offset, (source, target) in enumerate(zip(sources, targets, strict=True)):
        name = f"{first + offset:05d}.png"
        record = PairRecord(f"{SOURCE_DIR}/{name}", f"{TARGET_DIR}/{name}", prompt, source_prompt)
        for image, relative in ((source, record.source), (target, record.target)):
            picture = _to_pil(image)
            write_atomically(folder / relative, lambda tmp, picture=picture: picture.save(tmp, format="PNG"))
        new.append(record)
    text = existing if not existing or existing.endswith("\n") else existing + "\n"
    text += "".join(r.line() + "\n" for r in new)
    write_atomically(prompt_file, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return new
