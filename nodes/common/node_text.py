"""Text shown under the executing node in the ComfyUI frontend (the progress-text message the stock nodes use)."""

from __future__ import annotations

import logging


def show_on_node(text: str, level: int = logging.INFO) -> None:
    """Log ``text`` and, when a ComfyUI server runs the node, display it under the node.

    The node is found from ComfyUI's executing context and the text sent with ``PromptServer.send_progress_text``;
    either missing (a script calling ``execute``, an older ComfyUI, no server) leaves only the log line.
    """
    logging.log(level, "%s", text)
    try:
        from comfy_execution.utils import get_executing_context
        from server import PromptServer
    except ImportError:
        return
    context = get_executing_context()
    server = getattr(PromptServer, "instance", None)
    send = getattr(server, "send_progress_text", None)
    if context is None or send is None:
        return
    send(text, context.node_id)
