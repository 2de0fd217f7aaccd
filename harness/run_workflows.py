"""Run every example workflow (``example_workflows/*.json``, UI format) on a real ComfyUI with the tiny stand-ins.

Usage: ``.venv/bin/python -m harness.run_workflows [--out DIR] [--full-size] [--stall-timeout SECONDS]``. Unless
``--full-size`` is given, the workflows are shrunk for the stand-ins (``harness.stand_in_scale``). The server gets the
files in ``example_workflows/input/`` (for LoadImage). A workflow may run as long as the server keeps reporting
progress; it fails on an error, or after ``--stall-timeout`` seconds without any report (the message names the node that
was running). Images go to ``<out>/<workflow>/``, a table to ``<out>/report.md`` (wall-clock seconds and the server's
CPU seconds, which other jobs on the machine inflate less) and the server log to ``<out>/server.log``; the exit code is
1 when any workflow failed. The workflows in ``harness.ui_workflow.NOT_RUN`` are listed as skipped, with the reason.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.server import DEFAULT_STALL_TIMEOUT, ComfyServer
from harness.tiny_models import ensure_models
from harness.ui_workflow import EXAMPLE_WORKFLOWS_FOLDER, NOT_RUN, example_workflows, run_ui_workflow
from lab import demo as lab_demo


@dataclass
class WorkflowResult:
    """The outcome of one workflow (``skipped``: why it was not run)."""

    name: str
    ok: bool
    seconds: float
    cpu_seconds: float
    images: list[Path] = field(default_factory=list)
    error: str = ""
    skipped: str = ""


def run_workflow(
    server: ComfyServer,
    path: Path,
    object_info: dict[str, Any],
    out_dir: Path,
    full_size: bool = False,
    stall_timeout: float | None = None,
) -> WorkflowResult:
    """Run one workflow (``harness.ui_workflow.run_ui_workflow``: shrunk unless ``full_size``, with the server's
    stall limit unless ``stall_timeout`` is given); copy its images to ``out_dir/<stem>/``."""
    start, start_cpu = time.perf_counter(), server.cpu_seconds()
    target = out_dir / path.stem
    shutil.rmtree(target, ignore_errors=True)
    try:
        run = run_ui_workflow(server, path, object_info, full_size, stall_timeout)
        seconds, cpu_seconds = time.perf_counter() - start, server.cpu_seconds() - start_cpu
        images = []
        for image in run.images:
            target.mkdir(parents=True, exist_ok=True)
            images.append(Path(shutil.copy2(image, target / image.name)))
        return WorkflowResult(path.stem, True, seconds, cpu_seconds, images)
    except Exception as exc:
        seconds, cpu_seconds = time.perf_counter() - start, server.cpu_seconds() - start_cpu
        return WorkflowResult(path.stem, False, seconds, cpu_seconds, error=f"{type(exc).__name__}: {exc}")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


LAB_IMAGE_WIDTH = 384


def _table(results: list[WorkflowResult], out_dir: Path) -> list[str]:
    lines = [
        "| workflow | status | seconds | server CPU seconds | images | paths | error |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        paths = "<br>".join(str(path.relative_to(out_dir)) for path in result.images)
        error = result.error.splitlines()[0] if result.error else ""
        status = "skipped" if result.skipped else "ok" if result.ok else "FAILED"
        error = error or result.skipped
        lines.append(
            f"| {result.name} | {status} | {result.seconds:.1f} | {result.cpu_seconds:.1f} | {len(result.images)} "
            f"| {paths} | {_cell(error)} |"
        )
    return lines


def _lab_images(results: list[WorkflowResult], out_dir: Path) -> list[str]:
    """Each lab workflow's saved images in a row, shown at ×3 (the lab's world is 128 pixels)."""
    lines = []
    for result in results:
        if result.images:
            lines += ["", f"### {result.name}", ""]
            lines += [
                f'<img src="{path.relative_to(out_dir)}" width="{LAB_IMAGE_WIDTH}" title="{path.stem}" '
                f'style="image-rendering: pixelated">'
                for path in result.images
            ]
    return lines


def write_report(
    results: list[WorkflowResult], out_dir: Path, full_size: bool = False, lab_names: frozenset[str] = frozenset()
) -> Path:
    """Write ``report.md``: one row per example workflow, then the lab's workflows (run on its trained models, with
    their images), then the full error messages."""
    scale = "as written" if full_size else "at 1/8 of their sizes with step counts capped (harness/stand_in_scale.py)"
    examples = [result for result in results if result.name not in lab_names]
    lab = [result for result in results if result.name in lab_names]
    lines = ["# Example workflows", "", f"Run on tiny random-weight stand-in models, {scale}.", ""]
    if not results:
        lines.append(f"No workflows found in `{EXAMPLE_WORKFLOWS_FOLDER}/`.")
    lines += _table(examples, out_dir) if examples else []
    if lab:
        lines += ["", "# Lab workflows", "", "Run on the lab's trained models at their own size (128 pixels).", ""]
        lines += _table(lab, out_dir) + _lab_images(lab, out_dir)
    for result in results:
        if result.error:
            lines += ["", f"## {result.name}", "", "```", result.error, "```"]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_all(
    workflows: list[Path], out_dir: Path, full_size: bool = False, stall_timeout: float = DEFAULT_STALL_TIMEOUT
) -> tuple[list[WorkflowResult], frozenset[str]]:
    """Run ``workflows``, then the lab's (at their own size, on its trained models), on one server whose models dir
    holds the tiny stand-ins and the lab's files; print a line per workflow. Returns the results and the lab's names.
    The server log is copied to ``out_dir/server.log``."""
    results: list[WorkflowResult] = []
    with tempfile.TemporaryDirectory(prefix="precise-edit-run-") as tmp:
        models_dir = Path(tmp) / "models"
        ensure_models(models_dir)
        lab_demo.prepare(models_dir=models_dir)
        server = ComfyServer(
            Path(tmp) / "comfy", models_dir, stall_timeout=stall_timeout, extra_node_packs=lab_demo.node_packs()
        )
        try:
            with server:
                object_info = server.object_info()
                lab_workflows = lab_demo.workflows(server.base_dir / "input")
                for path in workflows + lab_workflows:
                    if path.stem in NOT_RUN:
                        results.append(WorkflowResult(path.stem, True, 0.0, 0.0, skipped=NOT_RUN[path.stem]))
                        print(f"skipped {path.stem}: {NOT_RUN[path.stem]}")
                        continue
                    result = run_workflow(server, path, object_info, out_dir, full_size or path in lab_workflows)
                    results.append(result)
                    status = "ok" if result.ok else "FAILED"
                    print(
                        f"{status:6} {result.name} ({result.seconds:.1f} s, server CPU {result.cpu_seconds:.1f} s, "
                        f"{len(result.images)} images)"
                    )
        finally:
            if server.log_path.exists():
                shutil.copy2(server.log_path, out_dir / "server.log")
    return results, frozenset(path.stem for path in lab_workflows)


def main(argv: list[str] | None = None) -> int:
    """Run all workflows once on one server; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("output"), help="folder for images and report.md")
    parser.add_argument("--full-size", action="store_true", help="run sizes and steps as the workflows give them")
    parser.add_argument(
        "--stall-timeout",
        type=float,
        default=DEFAULT_STALL_TIMEOUT,
        help="fail a workflow when the server reports no progress for this many seconds (default %(default).0f)",
    )
    args = parser.parse_args(argv)
    out_dir = args.out.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    results, lab_names = run_all(example_workflows(), out_dir, args.full_size, args.stall_timeout)
    report = write_report(results, out_dir, args.full_size, lab_names)
    with report.open("a") as handle:
        handle.write("\n".join(lab_demo.claims_markdown(out_dir)) + "\n")
    failed = [result.name for result in results if not result.ok]
    skipped = sum(1 for result in results if result.skipped)
    print(
        f"{len(results) - len(failed) - skipped}/{len(results)} workflows passed, {skipped} not run; report: {report}"
    )
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
