"""Running a UI-format workflow on a ComfyUI server: convert it to an API prompt, shrink it for the tiny stand-ins,
queue it, wait, and collect what it saved. The main job (``harness.run_workflows``) and the workflow tests both run
the example workflows through here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.comfy_env import repo_root
from harness.stand_in_scale import shrink_for_stand_ins
from harness.workflow_format import ui_to_api

if TYPE_CHECKING:
    import numpy as np

    from harness.server import ComfyServer

# The folder of the example workflows, relative to the repo root: ComfyUI's name for a pack's template folder (served
# at /api/workflow_templates/<pack>/). Its ``input/`` subfolder holds the files they load.
EXAMPLE_WORKFLOWS_FOLDER = "example_workflows"

_FULL_SIZE_ONLY = (
    "not run here: {models} have no tiny stand-in (ComfyUI's loaders fix their full widths from the file, "
    "{size}, too big for a CPU test), so the harness serves empty files under their names and the workflow is "
    "only validated by the server; tests/zone/test_dit_locator.py runs the same node chain on tiny {family} "
    "stand-ins"
)
# The example workflows the main job and the workflow tests do not run, with the reason: each is checked against the
# server's prompt validation instead (tests/common/test_workflows.py).
NOT_RUN: dict[str, str] = {
    "zone_qwen_image_edit": _FULL_SIZE_ONLY.format(
        models="Qwen-Image-Edit 2509 and its Qwen2.5-VL 7B text encoder",
        size="~340M parameters per Qwen-Image block, a 7B encoder",
        family="Qwen-Image",
    ),
    "zone_flux_kontext": _FULL_SIZE_ONLY.format(
        models="Flux.1 Kontext dev and its T5-XXL text encoder",
        size="~500M parameters for a 1+1-block Flux, a 4.7B encoder",
        family="Flux",
    ),
}


def example_workflow_dir() -> Path:
    """The folder of the example workflows in this checkout."""
    return repo_root() / EXAMPLE_WORKFLOWS_FOLDER


def example_workflows() -> list[Path]:
    """Every example workflow (UI format), sorted by name."""
    return sorted(example_workflow_dir().glob("*.json"))


def ui_prompt(path: Path, object_info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The API prompt of the UI workflow saved at ``path``, at the sizes and step counts it is written with."""
    return ui_to_api(json.loads(Path(path).read_text()), object_info)


@dataclass
class WorkflowRun:
    """A finished prompt: the API prompt as queued, its /history entry and the files its SaveImage nodes wrote."""

    prompt: dict[str, dict[str, Any]]
    history: dict[str, Any]
    images: list[Path] = field(default_factory=list)

    def saved(self) -> dict[str, list[Path]]:
        """The saved images by filename prefix, any subfolder dropped (``<prefix>_00001_.png`` -> ``<prefix>``), a
        batch in its order."""
        saved: dict[str, list[Path]] = {}
        for path in sorted(self.images, key=lambda path: path.name):
            saved.setdefault(path.name.rsplit("_", 2)[0], []).append(path)
        return saved

    def pixels(self, prefix: str, index: int = 0, mode: str = "RGB") -> np.ndarray:
        """Image ``index`` of the batch saved under ``prefix``, as an array (``mode`` as PIL names it: RGB, L)."""
        import numpy as np
        from PIL import Image

        with Image.open(self.saved()[prefix][index]) as image:
            return np.asarray(image.convert(mode))

    def cached_nodes(self) -> set[str]:
        """The ids of the nodes the server answered from its cache instead of running them."""
        messages = (self.history.get("status") or {}).get("messages", [])
        return {node for event, data in messages if event == "execution_cached" for node in data.get("nodes", [])}


def run_prompt(
    server: ComfyServer, prompt: dict[str, dict[str, Any]], full_size: bool = False, stall_timeout: float | None = None
) -> WorkflowRun:
    """Queue an API ``prompt`` (shrunk for the stand-ins unless ``full_size``), wait for it (``ComfyServer.wait``,
    with the server's stall limit unless ``stall_timeout`` is given) and collect its saved images."""
    queued = prompt if full_size else shrink_for_stand_ins(prompt)
    history = server.wait(server.queue(queued), stall_timeout)
    return WorkflowRun(queued, history, server.output_images(history))


def run_ui_workflow(
    server: ComfyServer,
    path: Path,
    object_info: dict[str, Any] | None = None,
    full_size: bool = False,
    stall_timeout: float | None = None,
) -> WorkflowRun:
    """Convert the UI workflow at ``path`` with ``object_info`` (the server's, fetched when not given) and run it."""
    prompt = ui_prompt(path, server.object_info() if object_info is None else object_info)
    return run_prompt(server, prompt, full_size, stall_timeout)


class ExampleRuns:
    """Each example workflow run at most once on ``server``, on first request, its run (or its error) kept."""

    def __init__(self, server: ComfyServer) -> None:
        self.server = server
        self._object_info: dict[str, Any] | None = None
        self._runs: dict[str, WorkflowRun | Exception] = {}

    @property
    def object_info(self) -> dict[str, Any]:
        """The server's /object_info, fetched once."""
        if self._object_info is None:
            self._object_info = self.server.object_info()
        return self._object_info

    def prompt(self, name: str) -> dict[str, dict[str, Any]]:
        """A fresh API prompt of the example workflow ``name`` (file stem), unshrunk, for a test to change and run."""
        return ui_prompt(example_workflow_dir() / f"{name}.json", self.object_info)

    def __getitem__(self, name: str) -> WorkflowRun:
        """The run of the example workflow ``name`` as written (shrunk for the stand-ins); raises its error again
        when it failed, and refuses a workflow in ``NOT_RUN``."""
        if name in NOT_RUN:
            raise ValueError(f"{name} is {NOT_RUN[name]}")
        if name not in self._runs:
            try:
                self._runs[name] = run_prompt(self.server, self.prompt(name))
            except Exception as exc:
                self._runs[name] = exc
        run = self._runs[name]
        if isinstance(run, Exception):
            raise run
        return run
