"""``python -m lab.report [--out DIR] [--claims NAMES]``: train (or load) the lab models, measure every claim with the
pack's nodes, print the claims table and write it with before/after/mask/difference images to ``DIR``.

The images are scaled ×3 (nearest) so the 128-pixel world reads at 384 pixels. A row that does not hold reads
"open" when ``lab.open_rows`` explains it (the explanation follows the table) and "**no**" otherwise; the command
exits with 1 when such an unexplained row fails.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lab.checks import Check
from lab.open_rows import OPEN, is_open

SCALE = 3


def _tile(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = np.repeat(image[..., None].astype(np.float32), 3, axis=-1)
    return np.kron(np.clip(image, 0, 1), np.ones((SCALE, SCALE, 1)))


def save_strip(path: Path, panels: list[tuple[str, np.ndarray]]) -> Path:
    """Images side by side, each scaled ×SCALE with its label above it, as one PNG."""
    from PIL import Image, ImageDraw

    tiles = [_tile(image) for _, image in panels]
    height, width = tiles[0].shape[:2]
    label_height = 22
    canvas = Image.new("RGB", (width * len(tiles) + 8 * (len(tiles) - 1), height + label_height), "white")
    draw = ImageDraw.Draw(canvas)
    for index, ((label, _), tile) in enumerate(zip(panels, tiles, strict=True)):
        x = index * (width + 8)
        canvas.paste(Image.fromarray((tile * 255).round().astype(np.uint8)), (x, label_height))
        draw.text((x + 2, 4), label[:60], fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a − b| averaged over channels, scaled so that a full colour change is white."""
    return np.clip(np.abs(a - b).mean(-1) * 2, 0, 1)


def _claims() -> list[tuple[str, Callable[[], Any], Callable[[Any], list[Check]], Callable[[Any, Path], list[Path]]]]:
    from lab.claims import (
        attention_mask,
        caption_accuracy,
        deltaedit_joint_clip,
        deltaedit_text_edit,
        mcdm_portrait_edit,
        null_text_inversion,
        prompt_to_prompt,
        s2edit_identity,
        zone_action_classifier,
        zone_fused_remove,
        zone_local_edit,
        zone_multi_turn,
    )

    def caption_images(result: Any, out: Path) -> list[Path]:
        panels = [(caption.replace(" and ", " + ")[:40], image) for caption, image in result.examples]
        return [save_strip(out / "caption_accuracy.png", panels)]

    def attention_images(result: Any, out: Path) -> list[Path]:
        example = result.example
        if not example:
            return []
        panels = [
            ("real image", example["image"]),
            (f"mask of '{example['word']}'", example["mask"]),
            ("ground truth", example["truth"]),
        ]
        return [save_strip(out / "attention_mask.png", panels)]

    def p2p_images(result: Any, out: Path) -> list[Path]:
        ex = result.examples
        if not ex:
            return []
        source = ex["source"]
        panels = [(name, image) for name, image in ex.items()]
        panels.insert(2, ("difference (injected)", difference(source, ex["swap injected"])))
        return [save_strip(out / "prompt_to_prompt.png", panels)]

    def nti_images(result: Any, out: Path) -> list[Path]:
        ex = result.examples
        if not ex:
            return []
        panels = [*ex.items(), ("difference (edit)", difference(ex["null-text reconstruction"], ex["p2p edit"]))]
        return [save_strip(out / "null_text_inversion.png", panels)]

    def s2edit_images(result: Any, out: Path) -> list[Path]:
        ex = result.examples
        if not ex:
            return []
        return [save_strip(out / "s2edit_identity.png", list(ex.items()))]

    def zone_images(result: Any, out: Path) -> list[Path]:
        paths = []
        for example in result.examples:
            panels = [
                (example["instruction"], example["source"]),
                ("instruction model", example["edited"]),
                ("true region", example["truth"]),
                ("M_b (attention)", example["attention rough"]),
                ("M_b (difference)", example["difference rough"]),
                ("final mask (difference)", example["difference final"]),
                ("composite (difference)", example["difference composite"]),
                ("difference", difference(example["source"], example["difference composite"])),
            ]
            paths.append(save_strip(out / f"zone_{example['instruction'].split()[0]}.png", panels))
        return paths

    def fused_remove_images(result: Any, out: Path) -> list[Path]:
        panels = list(result.example.items())
        if not panels:
            return []
        source = panels[0][1]
        panels += [(f"difference ({name})", difference(source, image)) for name, image in panels[1:]]
        return [save_strip(out / "zone_fused_remove.png", panels)]

    def multi_turn_images(result: Any, out: Path) -> list[Path]:
        return [save_strip(out / "zone_multi_turn.png", result.examples)] if result.examples else []

    def mcdm_images(result: Any, out: Path) -> list[Path]:
        paths = []
        for example in result.examples:
            source = example["source"]
            panels = [(example["edit"], source), ("x_B (the pair's target)", example["target"])]
            panels += [(route, example[route]) for route in mcdm_portrait_edit.ROUTES]
            panels += [(name, example[name]) for name in ("true region", "MCDM mask", "DiffEdit mask")]
            panels.append(("difference (three-scale)", difference(source, example[mcdm_portrait_edit.THREE_SCALE])))
            paths.append(save_strip(out / f"mcdm_{example['edit'].split()[0]}.png", panels))
        return paths

    def deltaedit_images(result: Any, out: Path) -> list[Path]:
        paths = []
        for example in result.examples:
            panels = [
                ("source (held out)", example["source"]),
                ("its embedding rendered", example["unedited"]),
                (f"{example['edit']}: mapper", example["delta_mapper"]),
                ("straightforward", example["straightforward"]),
                ("mapper, paper's threshold", example["delta_mapper_paper_threshold"]),
                ("difference (mapper)", difference(example["unedited"], example["delta_mapper"])),
            ]
            paths.append(save_strip(out / f"deltaedit_{example['edit'].split()[0]}.png", panels))
        return paths

    return [
        ("caption accuracy", caption_accuracy.measure, caption_accuracy.checks, caption_images),
        ("attention → mask", attention_mask.measure, attention_mask.checks, attention_images),
        ("prompt-to-prompt", prompt_to_prompt.measure, prompt_to_prompt.checks, p2p_images),
        ("null-text inversion", null_text_inversion.measure, null_text_inversion.checks, nti_images),
        ("S2Edit identity", s2edit_identity.measure, s2edit_identity.checks, s2edit_images),
        ("ZONE local edit", zone_local_edit.measure, zone_local_edit.checks, zone_images),
        ("MCDM portrait edit", mcdm_portrait_edit.measure, mcdm_portrait_edit.checks, mcdm_images),
        ("ZONE fused remove", zone_fused_remove.measure, zone_fused_remove.checks, fused_remove_images),
        ("ZONE three turns", zone_multi_turn.measure, zone_multi_turn.checks, multi_turn_images),
        ("ZONE action classifier", zone_action_classifier.measure, zone_action_classifier.checks, lambda r, o: []),
        ("DeltaEdit joint encoder", deltaedit_joint_clip.measure, deltaedit_joint_clip.checks, lambda _r, _o: []),
        ("DeltaEdit text edit", deltaedit_text_edit.measure, deltaedit_text_edit.checks, deltaedit_images),
    ]


def verdict(row: Check) -> str:
    """'yes'; 'open' for a row ``lab.open_rows`` explains; '**no**' for a row that should hold and does not."""
    if row.holds:
        return "yes (listed open: update lab/open_rows.py)" if is_open(row) else "yes"
    return "open (see below)" if is_open(row) else "**no**"


def table(rows: list[Check]) -> list[str]:
    lines = ["| claim | measure | value | compared with | holds |", "|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row.claim} | {row.measure} | {row.value:.3f} | {row.reference} | {verdict(row)} |")
    return lines


def open_reasons(rows: list[Check]) -> list[str]:
    """Under the table, for each claim with an open row that does not hold: what was measured and why."""
    claims = dict.fromkeys(row.claim for row in rows if is_open(row) and not row.holds)
    if not claims:
        return []
    lines = ["## Why the open rows do not hold", ""]
    return lines + [f"- **{claim}**: {OPEN[claim][1]}." for claim in claims]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("output/lab"), help="folder for report.md and images")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--claims", default="", help="comma-separated claim names to measure (default: all)")
    args = parser.parse_args(argv)
    chosen = {name.strip() for name in args.claims.split(",") if name.strip()}
    torch.set_num_threads(args.threads)
    from lab import runtime, train, train_deltaedit, train_instruction, train_mcdm

    out = args.out.resolve()
    start = time.perf_counter()
    train.main(["--threads", str(args.threads)])
    train_instruction.main(["--threads", str(args.threads)])
    train_deltaedit.main(["--threads", str(args.threads)])
    train_mcdm.main(["--threads", str(args.threads)])
    trained = time.perf_counter() - start
    rows: list[Check] = []
    images: list[Path] = []
    timings = [f"models ready: {trained:.0f} s"]
    with tempfile.TemporaryDirectory(prefix="precise-edit-lab-") as tmp:
        runtime.start(Path(tmp) / "comfy")
        for name, measure, checks, draw in _claims():
            if chosen and name not in chosen:
                continue
            began = time.perf_counter()
            result = measure()
            rows += checks(result)
            images += draw(result, out)
            timings.append(f"{name}: {time.perf_counter() - began:.0f} s")
            print("\n".join(table(checks(result))[2:]), flush=True)
    lines = ["# Lab claims", "", *table(rows), "", *open_reasons(rows), "", "Timings: " + "; ".join(timings), ""]
    lines += [f"![{path.stem}]({path.relative_to(out)})" for path in images]
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(table(rows)))
    print("; ".join(timings))
    return 0 if all(row.holds or is_open(row) for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
