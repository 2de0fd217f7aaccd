"""A real ComfyUI server process (main.py on 127.0.0.1) with this repo installed as a custom node pack.

``wait`` has no wall-clock limit: a prompt may run as long as the server keeps reporting on it (a node starting or
finishing, a ProgressBar step), so a slow machine is not a failure. It fails on an execution error, or when the server
reports nothing for ``stall_timeout`` seconds, naming the node that was running and its last progress.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil
import requests
import yaml

from harness.comfy_env import MODEL_FOLDERS, comfyui_root, replace_symlink, repo_root
from harness.errors import PromptFailed, PromptStalled, format_execution_error, format_validation_error
from harness.server_progress import ProgressTracker, RunningNode, WebsocketListener
from harness.ui_workflow import example_workflow_dir

CHECKOUT_NAME = "precise-edit-checkout"
# Seconds without any report from the server before a prompt counts as stalled: longer than any step of the example
# workflows on a slow, busy CPU (loading the 1.4 GB unCLIP stand-in is the longest silent step).
DEFAULT_STALL_TIMEOUT = 600.0
# Seconds for main.py to answer: a crash is seen at once, but on a busy 2-core machine importing ComfyUI and the node
# packs has taken more than 2 minutes.
DEFAULT_STARTUP_TIMEOUT = 600.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ComfyServer:
    """Start ``main.py --cpu`` with its folders under ``base_dir`` and model folders read from ``models_dir``.

    The repo is symlinked as ``<base_dir>/custom_nodes/precise-edit-checkout``, so the pack loads the way a user's
    checkout does, and the files the example workflows load (``example_workflows/input/``) are copied to its input
    folder.
    ``extra_node_packs`` are further custom node folders linked beside it (the tests' own nodes). Use as a context
    manager; the process is stopped by PID on exit.
    """

    def __init__(
        self,
        base_dir: Path,
        models_dir: Path,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        stall_timeout: float = DEFAULT_STALL_TIMEOUT,
        extra_node_packs: Sequence[Path] = (),
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.models_dir = Path(models_dir).resolve()
        self.startup_timeout = startup_timeout
        self.stall_timeout = stall_timeout
        self.extra_node_packs = [Path(pack).resolve() for pack in extra_node_packs]
        self.port = 0
        self.url = ""
        self.client_id = uuid.uuid4().hex
        self.log_path = self.base_dir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.progress = ProgressTracker()
        self._listener: WebsocketListener | None = None
        self._queued: dict[str, dict[str, Any]] = {}

    def __enter__(self) -> ComfyServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _write_model_paths(self) -> Path:
        config = {"precise_edit_harness": {"base_path": str(self.models_dir), "is_default": True}}
        config["precise_edit_harness"].update({folder: folder for folder in MODEL_FOLDERS})
        path = self.base_dir / "extra_model_paths.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def start(self) -> None:
        """Launch the process and wait until ``/system_stats`` answers."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        for folder in MODEL_FOLDERS:
            (self.models_dir / folder).mkdir(parents=True, exist_ok=True)
        replace_symlink(self.base_dir / "custom_nodes" / CHECKOUT_NAME, repo_root())
        for pack in self.extra_node_packs:
            replace_symlink(self.base_dir / "custom_nodes" / pack.name, pack)
        workflow_inputs = example_workflow_dir() / "input"
        if workflow_inputs.is_dir():
            shutil.copytree(workflow_inputs, self.base_dir / "input", dirs_exist_ok=True)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable,
            str(comfyui_root() / "main.py"),
            "--cpu",
            "--listen",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--disable-api-nodes",
            "--base-directory",
            str(self.base_dir),
            "--database-url",
            "sqlite:///:memory:",
            "--extra-model-paths-config",
            str(self._write_model_paths()),
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, cwd=self.base_dir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with code {self.process.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/system_stats", timeout=2).ok:
                    self._listen(max(1.0, deadline - time.monotonic()))
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"ComfyUI did not answer within {self.startup_timeout:.0f} s:\n{self.log_tail()}")

    def _listen(self, timeout: float) -> None:
        """Connect to the server's websocket as ``client_id``, the client the prompts' reports are sent to."""
        self._listener = WebsocketListener(f"ws://127.0.0.1:{self.port}/ws?clientId={self.client_id}", self.progress)
        try:
            self._listener.start(timeout)
        except TimeoutError:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop listening and terminate the process (kill it after 10 s)."""
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def cpu_seconds(self) -> float:
        """CPU time (user and system, all threads) the server process has used so far; 0 when it is not running."""
        if self.process is None or self.process.poll() is not None:
            return 0.0
        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system

    def log_tail(self, lines: int = 60) -> str:
        """The last ``lines`` lines of the server's log."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def object_info(self) -> dict[str, Any]:
        """The server's node definitions (GET /object_info)."""
        response = requests.get(f"{self.url}/object_info", timeout=60)
        response.raise_for_status()
        return response.json()

    def queue(self, prompt: dict[str, Any]) -> str:
        """POST an API-format prompt; return its id. Raises PromptFailed with the server's errors when it rejects it."""
        response = requests.post(f"{self.url}/prompt", json={"prompt": prompt, "client_id": self.client_id}, timeout=60)
        if response.status_code == 400:
            body = response.json()
            raise PromptFailed(format_validation_error(body.get("error"), body.get("node_errors", {})), details=body)
        response.raise_for_status()
        body = response.json()
        if body.get("node_errors"):
            raise PromptFailed(format_validation_error(None, body["node_errors"]), details=body)
        self._queued[body["prompt_id"]] = prompt
        self.progress.restart_clock()
        return body["prompt_id"]

    def wait(self, prompt_id: str, stall_timeout: float | None = None) -> dict[str, Any]:
        """Poll /history until the prompt finishes and return its history entry. Raise PromptFailed if it failed, and
        PromptStalled (after cancelling it) once the server has reported nothing for ``stall_timeout`` seconds
        (default: the server's ``stall_timeout``)."""
        limit = self.stall_timeout if stall_timeout is None else stall_timeout
        while True:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited while running {prompt_id}:\n{self.log_tail()}")
            response = requests.get(f"{self.url}/history/{prompt_id}", timeout=60)
            response.raise_for_status()
            entry = response.json().get(prompt_id)
            if entry is not None:
                status = entry.get("status") or {}
                if status.get("completed") and status.get("status_str") == "success":
                    return entry
                raise self._failure(prompt_id, status)
            silent = self.progress.silent_for()
            if silent > limit:
                running = self.progress.running(prompt_id)
                message = self._stall_message(prompt_id, silent, running)
                self.cancel(prompt_id)
                raise PromptStalled(message, None if running is None else running.node_id)
            time.sleep(0.1)

    def cancel(self, prompt_id: str) -> None:
        """Drop ``prompt_id`` if it is queued, then interrupt it if it is running (at its next progress report).

        In this order a prompt the worker takes between the two requests is running when the interrupt arrives; the
        other order let it slip through (the interrupt skipped it as not yet running, the delete as no longer queued)
        and run to its end."""
        requests.post(f"{self.url}/queue", json={"delete": [prompt_id]}, timeout=60).raise_for_status()
        requests.post(f"{self.url}/interrupt", json={"prompt_id": prompt_id}, timeout=60).raise_for_status()

    def _node_name(self, prompt_id: str, node_id: str) -> str:
        """``5 (ClassType, "Title")``: the node's id, class and title (its ``_meta`` title, else its display name)."""
        node = self._queued.get(prompt_id, {}).get(node_id)
        if node is None:
            return node_id
        class_type = node.get("class_type", "?")
        title = (node.get("_meta") or {}).get("title")
        if not title:
            response = requests.get(f"{self.url}/object_info/{class_type}", timeout=60)
            title = response.json().get(class_type, {}).get("display_name", class_type) if response.ok else class_type
        return f'{node_id} ({class_type}, "{title}")'

    def _stall_message(self, prompt_id: str, silent: float, running: RunningNode | None) -> str:
        head = f"prompt {prompt_id}: the server reported no progress for {silent:.0f} s"
        if running is None:
            return f"{head}, and none of its nodes had started (is another prompt still running?); cancelled it"
        return (
            f"{head} while node {self._node_name(prompt_id, running.node_id)} was running, and "
            f"{running.progress()}; cancelled it (raise the stall limit if this node is only slow)"
        )

    @staticmethod
    def _failure(prompt_id: str, status: dict[str, Any]) -> PromptFailed:
        for event, data in status.get("messages", []):
            if event == "execution_error":
                return PromptFailed(format_execution_error(data), node_id=data.get("node_id"), details=status)
            if event == "execution_interrupted":
                return PromptFailed(f"node {data.get('node_id')} was interrupted", data.get("node_id"), status)
        return PromptFailed(f"prompt {prompt_id} ended with status {status}", details=status)

    def output_images(self, history_entry: dict[str, Any], types: tuple[str, ...] = ("output",)) -> list[Path]:
        """Files of the images a finished prompt reported (SaveImage's by default; add "temp" for previews)."""
        paths = []
        for node_output in history_entry.get("outputs", {}).values():
            for image in node_output.get("images", []):
                if image.get("type") in types:
                    paths.append(self.base_dir / image["type"] / image.get("subfolder", "") / image["filename"])
        return paths
