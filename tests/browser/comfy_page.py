"""A ComfyUI frontend page in Playwright: opening it with the settings a test needs, loading graphs, queueing from
the keyboard, reading nodes and widgets through the frontend's own ``app``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import requests

# The pack's extension is registered and the frontend has put its start-up workflow on the canvas (later frontends do
# that after the app is set up; a graph loaded before it would be replaced).
READY = """() => window.app?.extensions?.some(e => e.name === 'PreciseEdit.TokenView')
    && window.app.graph?.nodes?.length > 0"""
LOAD_TIMEOUT_MS = 120_000


class ComfyPage:
    def __init__(self, page: Any, server: Any) -> None:
        self.page = page
        self.server = server
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        """Errors logged by the custom-node extensions (the frontend's own, e.g. blocked registry look-ups, are not
        the pack's)."""
        url = (message.location or {}).get("url", "")
        if message.type == "error" and "/extensions/" in url:
            self.errors.append(f"{url}: {message.text}")

    def open(self, vue_nodes: bool = False) -> None:
        """Load the frontend with the tutorial done (no template dialog) and the node renderer chosen."""
        settings = {"Comfy.TutorialCompleted": True, "Comfy.VueNodes.Enabled": vue_nodes}
        for key, value in settings.items():
            requests.post(f"{self.server.url}/settings/{key}", json=value, timeout=30).raise_for_status()
        self.page.goto(self.server.url)
        self.page.wait_for_function(READY, timeout=LOAD_TIMEOUT_MS)

    def evaluate(self, script: str, argument: Any = None) -> Any:
        return self.page.evaluate(script, argument)

    def load_workflow(self, workflow: dict[str, Any], name: str = "test.json") -> None:
        """Load a UI-format workflow as opening a file does."""
        self.evaluate("async ([w, name]) => { await app.loadGraphData(w, true, true, name); }", [workflow, name])

    def load_api_prompt(self, prompt: dict[str, Any], name: str = "test.json") -> None:
        """Load an API-format prompt (the frontend lays the nodes out itself)."""
        self.evaluate("async ([p, name]) => { await app.loadApiJson(p, name); }", [prompt, name])
        self.page.wait_for_function("(count) => app.graph.nodes.length === count", arg=len(prompt), timeout=30_000)

    def unregistered_node_types(self) -> list[str]:
        """Types of the graph's nodes the frontend has no definition for."""
        return self.evaluate("() => app.graph.nodes.map(n => n.type).filter(t => !LiteGraph.registered_node_types[t])")

    def widget_value(self, node_id: int, name: str) -> Any:
        return self.evaluate(
            "([id, name]) => app.graph.getNodeById(id).widgets.find(w => w.name === name).value", [node_id, name]
        )

    def set_widget_value(self, node_id: int, name: str, value: Any) -> None:
        self.evaluate(
            """([id, name, value]) => {
                const node = app.graph.getNodeById(id);
                const widget = node.widgets.find(w => w.name === name);
                widget.value = value;
                widget.callback?.(value);
            }""",
            [node_id, name, value],
        )

    def queue(self) -> None:
        """Queue the graph as a user does: Ctrl+Enter over the canvas."""
        self.page.mouse.click(800, 900)
        self.page.keyboard.press("Control+Enter")

    def node_outputs(self, node_id: int) -> dict[str, Any] | None:
        """What the frontend received for a node's UI output (``executed`` messages)."""
        return self.evaluate("(id) => app.nodeOutputs[String(id)] ?? null", node_id)

    def wait_for_outputs(self, node_id: int, timeout_ms: float = 180_000) -> dict[str, Any]:
        self.page.wait_for_function(
            "(id) => app.nodeOutputs[String(id)]?.images?.length > 0", arg=node_id, timeout=timeout_ms
        )
        return self.node_outputs(node_id)

    def screenshot(self, name: str) -> Path:
        """Save the page as ``<name>.png`` in $PRECISE_EDIT_SCREENSHOTS, else in the server's folder."""
        folder = os.environ.get("PRECISE_EDIT_SCREENSHOTS")
        path = (Path(folder) if folder else self.server.base_dir / "screenshots") / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path))
        return path
