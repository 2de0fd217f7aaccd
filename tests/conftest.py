"""Fixtures: an in-process ComfyUI, the tiny models, a prompt runner and a real server, all started on first use.

Tests that request none of them never import ComfyUI, so the unit tests of ``core`` run without it.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from harness.server import ComfyServer
    from harness.ui_workflow import ExampleRuns

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))
if str(REPO / "tests") not in sys.path:
    sys.path.append(str(REPO / "tests"))

from harness.comfy_env import ComfyDirs, ensure_pack_importable  # noqa: E402

ensure_pack_importable()

SD15_CHECKPOINT = "v1-5-pruned-emaonly-fp16.safetensors"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the real server ``server``, so ``-m "not server"`` leaves it out."""
    for item in items:
        if "comfy_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.server)


@pytest.fixture(scope="session", autouse=True)
def seeded_torch() -> None:
    """Seed torch and random once per session."""
    import torch

    torch.manual_seed(0)
    random.seed(0)


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One temporary folder for everything the ComfyUI fixtures write."""
    return tmp_path_factory.mktemp("precise_edit")


@pytest.fixture(scope="session")
def comfy(session_dir: Path) -> ComfyDirs:
    """ComfyUI started in this process, with stock nodes and the pack's nodes registered."""
    from harness.comfy_env import bootstrap

    base_dir = session_dir / "comfy"
    bootstrap(base_dir)
    return ComfyDirs(base_dir=base_dir, models_dir=base_dir / "models")


@pytest.fixture(scope="session")
def tiny_models(session_dir: Path) -> dict[str, Path]:
    """The tiny models, under their own and their stand-in file names, in the in-process ComfyUI's models dir."""
    from harness.tiny_models import ensure_models

    return ensure_models(session_dir / "comfy" / "models")


@pytest.fixture(scope="session")
def run_graph(comfy: ComfyDirs) -> Callable[..., dict[str, tuple[Any, ...]]]:
    """``run_graph(prompt, outputs=[node ids])``: execute an API-format prompt in process, return node outputs."""
    from harness.executor import run_prompt

    return run_prompt


@pytest.fixture(scope="session")
def comfy_server(session_dir: Path, tiny_models: dict[str, Path]) -> Iterator[ComfyServer]:
    """A started ComfyUI server process reading the same models dir, with this repo as a custom node pack (and the
    harness tests' own nodes, ``tests/harness_test_nodes``)."""
    from harness.server import ComfyServer

    test_nodes = REPO / "tests" / "harness_test_nodes"
    with ComfyServer(session_dir / "server", session_dir / "comfy" / "models", extra_node_packs=[test_nodes]) as server:
        yield server


@pytest.fixture(scope="session")
def example_runs(comfy_server: ComfyServer) -> ExampleRuns:
    """``example_runs["<workflow stem>"]``: the example workflow's run on ``comfy_server`` at the stand-ins' scale,
    queued on the first request and shared by every later one; ``example_runs.prompt(stem)`` is a fresh, unshrunk API
    prompt of it, for a test that changes an input and queues it itself."""
    from harness.ui_workflow import ExampleRuns

    return ExampleRuns(comfy_server)


@pytest.fixture(scope="session")
def sd15(comfy: ComfyDirs, tiny_models: dict[str, Path]) -> SimpleNamespace:
    """The tiny SD1.5 checkpoint as the stock CheckpointLoaderSimple returns it: ``model``, ``clip``, ``vae``."""
    import nodes

    model, clip, vae = nodes.CheckpointLoaderSimple().load_checkpoint(SD15_CHECKPOINT)[:3]
    return SimpleNamespace(model=model, clip=clip, vae=vae)
