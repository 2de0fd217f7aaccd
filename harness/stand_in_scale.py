"""Shrinking an example workflow to what the tiny stand-in models can run quickly on a CPU.

Example workflows are written for real checkpoints (512 px, 20 steps). The tiny random-weight models give noise at
any size, and on a 2-core CPU one 512 px, 20-step run of the tiny SD1.5 takes minutes. The main job and the
workflow tests therefore divide every ``width``/``height`` input by ``factor`` and cap every ``steps`` input; nothing
else in the graph changes, so the same nodes, links and settings run.
"""

import copy
from typing import Any

SIZE_INPUTS = ("width", "height")


def shrink_for_stand_ins(prompt: dict[str, dict[str, Any]], factor: int = 8, max_steps: int = 4) -> dict:
    """A copy of the API ``prompt`` with sizes divided by ``factor`` (at least 8 px) and steps capped."""
    shrunk = copy.deepcopy(prompt)
    for node in shrunk.values():
        inputs = node["inputs"]
        for name in SIZE_INPUTS:
            value = inputs.get(name)
            if type(value) is int:
                inputs[name] = max(8, value // factor)
        steps = inputs.get("steps")
        if type(steps) is int:
            inputs["steps"] = min(steps, max_steps)
    return shrunk
