"""Run API-format prompts in this process through ComfyUI's own validation and PromptExecutor.

One executor serves the whole process, so node outputs are cached between prompts exactly as in ComfyUI. Call
``comfy_env.bootstrap`` first.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

from harness import comfy_env
from harness.errors import PromptFailed, format_execution_error, format_validation_error

if TYPE_CHECKING:
    from execution import PromptExecutor

__all__ = ["PromptFailed", "last_events", "run_prompt"]

CLIENT_ID = "precise-edit-harness"
# Every cache setting ComfyUI's main.py passes its PromptExecutor: LRU size and the RAM-pressure headrooms (active,
# and inactive since ComfyUI reads a third one). A ComfyUI reads only those it knows; the CLASSIC cache uses none.
CACHE_ARGS = {"lru": 0, "ram": 0, "ram_inactive": 0}


class _ServerStub:
    """What PromptExecutor and its progress handlers use of PromptServer; keeps every message it is sent."""

    def __init__(self) -> None:
        self.client_id: str | None = None
        self.last_node_id: str | None = None
        self.last_prompt_id: str | None = None
        self.sockets_metadata: dict[str, dict[str, Any]] = {}
        self.messages: list[tuple[Any, Any]] = []

    def send_sync(self, event: Any, data: Any, sid: str | None = None) -> None:
        self.messages.append((event, data))


_server = _ServerStub()
_executor: PromptExecutor | None = None


def _progress_hook(
    value: float, total: float, preview_image: Any, prompt_id: str | None = None, node_id: str | None = None
) -> None:
    """ComfyUI's ProgressBar hook as main.py installs it: honours Interrupt and reports progress."""
    import comfy.model_management
    from comfy_execution.progress import get_progress_state
    from comfy_execution.utils import get_executing_context

    context = get_executing_context()
    if prompt_id is None:
        prompt_id = context.prompt_id if context is not None else _server.last_prompt_id
    if node_id is None:
        node_id = context.node_id if context is not None else _server.last_node_id
    comfy.model_management.throw_exception_if_processing_interrupted()
    get_progress_state().update_progress(node_id, value, total, preview_image)
    progress = {"value": value, "max": total, "prompt_id": prompt_id, "node": node_id}
    _server.send_sync("progress", progress, _server.client_id)


def _get_executor() -> PromptExecutor:
    global _executor
    if _executor is None:
        if not comfy_env.is_bootstrapped():
            raise RuntimeError("ComfyUI is not started in this process: call harness.comfy_env.bootstrap() first")
        import comfy.utils
        import execution

        comfy.utils.set_progress_bar_global_hook(_progress_hook)
        _executor = execution.PromptExecutor(_server, cache_type=execution.CacheType.CLASSIC, cache_args=CACHE_ARGS)
    return _executor


def _cached_outputs(executor: PromptExecutor, node_id: str) -> Any:
    """The output cache's entry for ``node_id``: through the synchronous ``get_local`` where the cache has one
    (ComfyUI made ``get`` a coroutine and put ``get_local`` beside it), else through the synchronous ``get``."""
    cache = executor.caches.outputs
    get_local = getattr(cache, "get_local", None)
    return get_local(node_id) if get_local is not None else cache.get(node_id)


async def _validate(prompt_id: str, prompt: dict[str, Any], wanted: list[str]) -> list[str]:
    """Validate like the server does, plus the requested non-output nodes; return the node ids to execute."""
    import execution

    valid, error, good_outputs, node_errors = await execution.validate_prompt(prompt_id, prompt, None)
    if not valid and not (wanted and error["type"] == "prompt_no_outputs"):
        raise PromptFailed(format_validation_error(error, node_errors), details=node_errors)
    if node_errors:
        raise PromptFailed(format_validation_error(None, node_errors), details=node_errors)
    validated: dict[str, tuple[bool, list[dict[str, Any]], str]] = {}
    for node_id in wanted:
        if node_id not in good_outputs:
            await execution.validate_inputs(prompt_id, prompt, node_id, validated)
    extra_errors = {
        node_id: {"class_type": prompt[node_id]["class_type"], "errors": reasons}
        for node_id, (ok, reasons, _) in validated.items()
        if ok is not True and reasons
    }
    if extra_errors:
        raise PromptFailed(format_validation_error(None, extra_errors), details=extra_errors)
    return list(dict.fromkeys([*good_outputs, *wanted]))


def _as_returned(class_type: str, outputs: list[list[Any]]) -> tuple[Any, ...]:
    """Undo ComfyUI's per-call wrapping: one value per output, or the list for list outputs and list-mapped calls."""
    import nodes

    is_list = list(getattr(nodes.NODE_CLASS_MAPPINGS[class_type], "OUTPUT_IS_LIST", None) or [])
    is_list += [False] * (len(outputs) - len(is_list))
    return tuple(
        values if listed or len(values) != 1 else values[0] for values, listed in zip(outputs, is_list, strict=False)
    )


def run_prompt(prompt: dict[str, Any], outputs: list[str] | None = None) -> dict[str, tuple[Any, ...]]:
    """Validate and execute ``prompt``; return the values each node in ``outputs`` returned.

    Nodes in ``outputs`` run even when no output node needs them. Raises PromptFailed with ComfyUI's validation
    errors, or with the failing node's id, exception and traceback.
    """
    executor = _get_executor()
    wanted = [str(node_id) for node_id in outputs or []]
    unknown = [node_id for node_id in wanted if node_id not in prompt]
    if unknown:
        raise ValueError(f"outputs {unknown} are not node ids of the prompt")
    prompt_id = uuid.uuid4().hex
    targets = asyncio.run(_validate(prompt_id, prompt, wanted))
    _server.messages.clear()
    _server.last_prompt_id = prompt_id
    executor.execute(prompt, prompt_id, {"client_id": CLIENT_ID}, targets)
    # A node whose input is an ExecutionBlocker with a message reports it straight to the server, not as a status.
    for event, data in [*executor.status_messages, *_server.messages]:
        if event == "execution_error":
            raise PromptFailed(format_execution_error(data), node_id=data["node_id"], details=data)
        if event == "execution_interrupted":
            message = f"node {data['node_id']} ({data['node_type']}) was interrupted"
            raise PromptFailed(message, node_id=data["node_id"], details=data)
    results = {}
    for node_id in wanted:
        entry = _cached_outputs(executor, node_id)
        if entry is None or entry.outputs is None:
            raise PromptFailed(f"node {node_id} ({prompt[node_id]['class_type']}) produced no output", node_id)
        results[node_id] = _as_returned(prompt[node_id]["class_type"], entry.outputs)
    return results


def last_events() -> list[tuple[Any, Any]]:
    """Every (event, data) message the last prompt sent to the client: executing, progress, executed, previews."""
    return list(_server.messages)
