"""Make ComfyUI importable in CPU mode for the lab's own processes (training, claims, report)."""

from __future__ import annotations

from harness.comfy_env import setup_imports


def import_comfy() -> None:
    """Put ComfyUI first on sys.path in CPU mode (a no-op once done); the lab then imports ``comfy`` directly."""
    setup_imports(cpu=True)
