"""Run every bench at one preset and device, each in its own process, and write one table of all their figures.

    .venv/bin/python bench/run_all.py                                   # make bench: tiny preset, CPU
    .venv/bin/python bench/run_all.py --preset full --device cuda       # make bench-gpu: full size on a lent GPU

Each bench prints its own report (kept in ``<out>/bench-<preset>-<device>.log``) and appends its figures to a
JSON-lines file; the table (``<out>/bench-<preset>-<device>.md``, also printed) has one row per figure: the bench,
the variant, the clock, the median and its ratio to the bench's baseline. A bench that fails or runs past
``--limit`` seconds gets a row saying so and makes the command exit 1 once the others have run, so one call on a
lent GPU yields every figure it can.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
BENCHES = (
    "attention/overhead",
    "attention/dit_overhead",
    "s2edit/prompt_to_prompt",
    "s2edit/null_text_inversion",
    "s2edit/identity_trainer",
    "zone/locator",
    "zone/compositing",
    "zone/sam_segment",
    "deltaedit/delta_mapper",
    "mcdm/guider",
    "mcdm/trainer",
)


def table(rows: list[dict], failures: dict[str, str]) -> str:
    """The Markdown table of every figure, then one row per bench that gave none."""
    lines = ["| bench | variant | clock | median | ratio |", "|---|---|---|---|---|"]
    for row in rows:
        ratio = ", ".join(f"{value:.3f}× {base}" for base, value in row["ratios"].items())
        lines.append(f"| {row['bench']} | {row['variant']} | {row['clock']} | {row['ms']:.1f} ms | {ratio} |")
    lines += [f"| {name} | — | — | — | {reason} |" for name, reason in failures.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=["tiny", "full"], default="tiny")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--limit", type=float, default=600.0, help="seconds one bench may run")
    parser.add_argument("--only", nargs="*", choices=BENCHES, help="run only these benches")
    parser.add_argument("--out", type=Path, default=Path("output"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"bench-{args.preset}-{args.device}"
    figures = stem.with_suffix(".jsonl")
    figures.unlink(missing_ok=True)
    failures: dict[str, str] = {}
    started = time.perf_counter()
    with open(stem.with_suffix(".log"), "w", encoding="utf-8") as log:
        for name in args.only or BENCHES:
            command = [sys.executable, str(BENCH / f"{name}.py"), "--preset", args.preset, "--device", args.device]
            command += ["--table", str(figures)]
            print(f"[bench] {name}", flush=True)
            log.write(f"$ {' '.join(command)}\n")
            log.flush()
            clock = time.perf_counter()
            try:
                done = subprocess.run(
                    command, stdout=log, stderr=subprocess.STDOUT, timeout=args.limit, env=os.environ.copy()
                )
                if done.returncode != 0:
                    failures[name] = f"failed (exit {done.returncode}; see {stem.with_suffix('.log').name})"
            except subprocess.TimeoutExpired:
                failures[name] = f"stopped after {args.limit:.0f} s"
            log.write(f"[{name}: {time.perf_counter() - clock:.1f} s]\n\n")
    rows = [json.loads(line) for line in figures.read_text().splitlines()] if figures.exists() else []
    device = rows[0]["device"] if rows else args.device
    heading = f"# Benches: {args.preset} preset, {device}, {time.perf_counter() - started:.0f} s in all\n\n"
    text = heading + table(rows, failures)
    stem.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
