"""What a ComfyUI server reports while it runs prompts, heard on its websocket (``/ws?clientId=...``).

The server sends the client that queued a prompt ``execution_start``, ``executing`` (a node starts; ``node: null``
when the prompt ends), ``progress`` (a node's ProgressBar: ``value`` of ``max``), ``progress_state``, ``executed``,
``execution_cached`` and one of ``execution_success`` / ``execution_error`` / ``execution_interrupted``, each with the
``prompt_id`` (ComfyUI 0.3.75 and 0.33 send the same). ``ProgressTracker`` keeps the time of the last such message and
the node each prompt is running, so a waiter can tell a slow prompt (it keeps reporting) from a stalled one (silent).
``WebsocketListener`` feeds a tracker from a background thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

PROMPT_ENDED = frozenset({"execution_success", "execution_error", "execution_interrupted"})


@dataclass
class RunningNode:
    """The node a prompt is executing and the last progress it reported (``None`` until it reports one)."""

    node_id: str
    value: float | None = None
    maximum: float | None = None

    def progress(self) -> str:
        """``"3/4"``, or a sentence saying that the node reported no progress."""
        if self.value is None:
            return "it reported no progress"
        return f"its last progress was {self.value:g}/{self.maximum:g}"


class ProgressTracker:
    """The time of the server's last report on any prompt, and the node each prompt is running. Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._last_report = clock()
        self._running: dict[str, RunningNode] = {}

    def restart_clock(self) -> None:
        """Count silence from now (call when queueing, so time spent before the server answers is not a stall)."""
        with self._lock:
            self._last_report = self._clock()

    def record(self, message: dict[str, Any]) -> None:
        """Take one websocket message (``{"type": ..., "data": {...}}``); messages about no prompt are ignored."""
        data = message.get("data")
        if not isinstance(data, dict) or data.get("prompt_id") is None:
            return
        kind, prompt_id = message.get("type"), str(data["prompt_id"])
        with self._lock:
            self._last_report = self._clock()
            if kind == "executing":
                if data.get("node") is None:
                    self._running.pop(prompt_id, None)
                else:
                    self._running[prompt_id] = RunningNode(str(data["node"]))
            elif kind == "progress" and data.get("node") is not None:
                node = self._running.get(prompt_id)
                if node is None or node.node_id != str(data["node"]):
                    node = self._running[prompt_id] = RunningNode(str(data["node"]))
                node.value, node.maximum = data.get("value"), data.get("max")
            elif kind in PROMPT_ENDED:
                self._running.pop(prompt_id, None)

    def silent_for(self) -> float:
        """Seconds since the server last reported on any prompt (or since ``restart_clock``)."""
        with self._lock:
            return self._clock() - self._last_report

    def running(self, prompt_id: str) -> RunningNode | None:
        """A copy of the node ``prompt_id`` is running, or ``None`` when none has started (or the prompt ended)."""
        with self._lock:
            node = self._running.get(prompt_id)
            return None if node is None else RunningNode(node.node_id, node.value, node.maximum)


class WebsocketListener:
    """Reads ``ws_url`` in a daemon thread and passes every JSON message to ``tracker``; reconnects if dropped."""

    def __init__(self, ws_url: str, tracker: ProgressTracker) -> None:
        self.ws_url = ws_url
        self.tracker = tracker
        self._connected = threading.Event()
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float) -> None:
        """Start listening; raise TimeoutError when no connection is made within ``timeout`` seconds."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._listen(),), daemon=True)
        self._thread.start()
        if not self._connected.wait(timeout):
            self.stop()
            raise TimeoutError(f"no websocket connection to {self.ws_url} within {timeout:.0f} s")

    async def _listen(self) -> None:
        async with aiohttp.ClientSession() as session:
            while not self._stopping:
                try:
                    async with session.ws_connect(self.ws_url, max_msg_size=0) as socket:
                        self._socket = socket
                        self._connected.set()
                        async for message in socket:
                            if message.type == aiohttp.WSMsgType.TEXT:
                                self.tracker.record(json.loads(message.data))
                except (aiohttp.ClientError, OSError):
                    pass
                self._socket = None
                if not self._stopping:
                    await asyncio.sleep(0.25)

    def stop(self) -> None:
        """Close the connection and end the thread (waits at most 5 s)."""
        self._stopping = True
        loop, socket = self._loop, self._socket
        if loop is not None and socket is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(socket.close(), loop)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if loop is not None and not loop.is_running():
            loop.close()
