"""Shrinking an example workflow to what the tiny stand-in models can run quickly on a CPU.

Example workflows are written for real checkpoints (512 px, 20 steps, hundreds of training steps). The tiny
random-weight models give noise at any size, and on a 2-core CPU one 512 px, 20-step run of the tiny SD1.5 takes
minutes. The main job and the workflow tests therefore divide every ``width``/``height``/``longest_side`` input by
``factor`` and cap the counts of ``COUNT_CAPS`` (a node class in ``NODE_COUNT_CAPS`` has its own caps); nothing else
in the graph changes, so the same nodes, links and settings run, every loop at least once.
"""

import copy
from typing import Any

SIZE_INPUTS = ("width", "height", "longest_side")
# Sampling, training and inversion steps; and null-text inversion's Adam iterations per DDIM step, each a backward
# pass through the UNet (10 in the workflows: 10 of the 12 UNet passes of every inverted step).
COUNT_CAPS = {"steps": 4, "inner_steps": 2}
NODE_COUNT_CAPS = {
    # every step a forward and backward pass through the full-size CLIP-L text encoder and the UNet, per subject
    "PreciseEdit_IdentityTokenTrainer": {"steps": 2},
    # the prompt-to-prompt edit replays the inversion's steps, so each one is a DDIM step, an optimised null text and
    # an edited sampling step
    "PreciseEdit_NullTextInversion": {"steps": 3},
}


def shrink_for_stand_ins(prompt: dict[str, dict[str, Any]], factor: int = 8) -> dict:
    """A copy of the API ``prompt`` with sizes divided by ``factor`` (at least 8 px) and counts capped."""
    shrunk = copy.deepcopy(prompt)
    for node in shrunk.values():
        inputs = node["inputs"]
        for name in SIZE_INPUTS:
            value = inputs.get(name)
            if type(value) is int:
                inputs[name] = max(8, value // factor)
        for name, cap in (COUNT_CAPS | NODE_COUNT_CAPS.get(node["class_type"], {})).items():
            value = inputs.get(name)
            if type(value) is int:
                inputs[name] = min(value, cap)
    return shrunk
