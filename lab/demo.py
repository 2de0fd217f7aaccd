"""The lab's part of the main job (``make demo``): its models, its workflows on the job's server, its claims table.

``harness.run_workflows`` calls ``prepare`` before starting the server (the loader node then finds the models in the
cache), links ``node_packs`` into it, runs ``workflows`` at their full size after the example workflows, and appends
``claims_markdown`` to ``output/report.md``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

LAB_DIR = Path(__file__).resolve().parent


def prepare(threads: int = 2, models_dir: Path | None = None) -> None:
    """Train the lab models into ``.cache/lab`` unless they are there; with ``models_dir``, put the DeltaEdit
    workflow's joint CLIP into its ``clip_joint`` folder (where Joint CLIP Loader lists it)."""
    from lab import train, train_deltaedit, train_instruction, train_mcdm
    from lab.claims import deltaedit_text_edit

    train.main(["--threads", str(threads)])
    train_instruction.main(["--threads", str(threads)])
    train_deltaedit.main(["--threads", str(threads)])
    if models_dir is not None:
        deltaedit_text_edit.install_joint_clip(models_dir / deltaedit_text_edit.CLIP_JOINT_FOLDER)
    train_mcdm.main(["--threads", str(threads)])


def node_packs() -> list[Path]:
    """The lab's custom node folder (PreciseEditLab_Loader), for ``ComfyServer(extra_node_packs=...)``."""
    return [LAB_DIR / "custom_node"]


def workflows(input_dir: Path) -> list[Path]:
    """The lab's UI workflows, after copying the images they load into the server's ``input_dir`` (and writing the
    DeltaEdit workflow's folder of training portraits there)."""
    from lab.claims import deltaedit_text_edit

    shutil.copytree(LAB_DIR / "workflows" / "input", input_dir, dirs_exist_ok=True)
    deltaedit_text_edit.write_training_folder(input_dir)
    return sorted((LAB_DIR / "workflows").glob("*.json"))


def claims_markdown(out_dir: Path) -> list[str]:
    """Measure every claim (``python -m lab.report``'s work, in a fresh process) and return its report's lines,
    image links made relative to ``out_dir``."""
    import subprocess
    import sys

    lab_out = out_dir / "lab"
    subprocess.run([sys.executable, "-m", "lab.report", "--out", str(lab_out)], cwd=LAB_DIR.parent, check=False)
    report = lab_out / "report.md"
    if not report.is_file():
        return ["", "# Lab claims", "", "`python -m lab.report` wrote no report: see its output above."]
    lines = report.read_text().splitlines()
    return ["", *(line.replace("](", "](lab/") if line.startswith("![") else line for line in lines)]
