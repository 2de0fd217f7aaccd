"""What nodes acting on the cross-attention of a prompt's words share: their inputs, and which prompt they target.

The target is a guider role (``positive``, ``negative``, …) or, when the user connects a conditioning, exactly that
conditioning: it is copied with a tag that the effect looks for (see ``nodes.attention.patch_install``).
"""

import uuid

from comfy_execution.graph_utils import ExecutionBlocker

from ..common.comfy_node_api import io
from .attention_effect import PromptTarget
from .patch_install import COND_TAGS_KEY


def prompt_inputs(action: str) -> list:
    """MODEL, CLIP, the prompt text and the words the node ``action``s (e.g. "mask", "record")."""
    return [
        io.Model.Input(
            "model",
            tooltip="An SD1.x, SD2.x or SDXL UNet (InstructPix2Pix variants too), or a Flux.1/Kontext, Flux.2, "
            "Qwen-Image(-Edit) or SD3 DiT.",
        ),
        io.Clip.Input(
            "clip",
            tooltip="The CLIP / text encoder that encodes the prompt (CLIP, T5, Qwen2.5-VL, …), to find the words' "
            "token positions.",
        ),
        io.String.Input(
            "text",
            default="",
            multiline=True,
            tooltip="The prompt exactly as it is encoded (embedding:name allowed).",
        ),
        io.String.Input(
            "words", default="", tooltip=f"Word(s) or phrase(s) of the prompt to {action}, comma-separated."
        ),
    ]


def step_range_inputs(action: str) -> list:
    return [
        io.Float.Input(
            name,
            default=default,
            min=0.0,
            max=1.0,
            step=0.001,
            tooltip=f"Sampling progress where {action} {edge}.",
        )
        for name, default, edge in (("start_percent", 0.0, "starts"), ("end_percent", 1.0, "ends"))
    ]


def target_input(roles: list[str], action: str) -> io.Combo.Input:
    return io.Combo.Input(
        "target",
        options=roles,
        default=roles[0],
        tooltip=f"Which prompt of the sampler is {action} when no conditioning is connected below.",
    )


def conditioning_input(action: str) -> io.Conditioning.Input:
    return io.Conditioning.Input(
        "conditioning",
        optional=True,
        tooltip=f"Connect the prompt's conditioning (and use the output) to {action} exactly that prompt.",
    )


def conditioning_output(action: str) -> io.Conditioning.Output:
    return io.Conditioning.Output(
        display_name="CONDITIONING", tooltip=f"The connected conditioning, marked as the one to {action}."
    )


def tag_conditioning(conditioning: list, tag: str) -> list:
    """A copy of ``conditioning`` whose entries carry ``tag``, so effects with that tag apply to them only."""
    tagged = []
    for embedding, options in conditioning:
        options = options.copy()
        options[COND_TAGS_KEY] = tuple(options.get(COND_TAGS_KEY, ())) + (tag,)
        tagged.append([embedding, options])
    return tagged


def prompt_target(role: str, conditioning: list | None) -> tuple[PromptTarget, list | ExecutionBlocker]:
    """The effect's target, and the CONDITIONING output: the tagged input, or a blocker saying how to use it."""
    if conditioning is None:
        return PromptTarget(role=role), ExecutionBlocker(
            "this CONDITIONING output is only set when a conditioning is connected to the node's input"
        )
    tag = uuid.uuid4().hex
    return PromptTarget(tag=tag), tag_conditioning(conditioning, tag)
