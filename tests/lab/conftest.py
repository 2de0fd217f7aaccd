"""The lab's fixtures: the in-process ComfyUI with the lab loader registered."""

from __future__ import annotations

import pytest

from harness.comfy_env import ComfyDirs


@pytest.fixture(scope="session")
def lab_comfy(comfy: ComfyDirs) -> ComfyDirs:
    """The tests' in-process ComfyUI, with ``PreciseEditLab_Loader`` added (the lab models train on first use)."""
    from lab.runtime import register_nodes

    register_nodes()
    return comfy
