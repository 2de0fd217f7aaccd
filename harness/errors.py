"""The error raised when ComfyUI rejects or fails a prompt, with ComfyUI's error details made readable."""

from __future__ import annotations

from typing import Any


class PromptFailed(RuntimeError):
    """A prompt failed validation or execution; ``node_id`` names the failing node when one is known."""

    def __init__(self, message: str, node_id: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.node_id = node_id
        self.details = details


class PromptStalled(PromptFailed):
    """A prompt ran for longer than the stall limit without the server reporting any progress on it."""


def format_validation_error(error: dict[str, Any] | None, node_errors: dict[str, Any]) -> str:
    """Render ``validate_prompt``'s error and per-node errors (also the body of a server's 400 reply) as text."""
    lines = []
    if error:
        lines.append(f"{error.get('message', 'invalid prompt')}: {error.get('details', '')}".rstrip(": "))
    for node_id, info in node_errors.items():
        lines.append(f"node {node_id} ({info.get('class_type', '?')}):")
        for reason in info.get("errors", []):
            lines.append(f"  - {reason.get('message', '')}: {reason.get('details', '')}")
    return "\n".join(lines) or "invalid prompt"


def format_execution_error(data: dict[str, Any]) -> str:
    """Render the payload of an ``execution_error`` status message (node, exception, traceback) as text."""
    message = str(data.get("exception_message", "")).strip()
    head = f"node {data.get('node_id')} ({data.get('node_type')}) raised {data.get('exception_type')}: {message}"
    traceback = "".join(data.get("traceback") or [])
    return f"{head}\n{traceback}".rstrip()
