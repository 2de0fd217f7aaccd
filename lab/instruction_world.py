"""Instruction edits of the toy world: (source, instruction, target, true changed region), deterministic from a seed.

Three actions, as ZONE's action classifier names them:

- change: "make the red circle blue": one object of the scene in a colour the scene does not use;
- add: "add a big red striped square on the left": a new object at a free position, in an unused colour;
- remove: "remove the red triangle".

Objects are named by colour and shape (a scene's colours are distinct, so the name is unique). Source and target are
rendered from the same placement of every object and the same background and pixel noise, so they differ exactly on
the true changed region: the changed or removed object's visible pixels in the source, the added object's in the
target. ``object_masks`` are each image's per-object masks (by colour), the segments a segmenter would find.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

import numpy as np

from lab import world

ACTIONS = ("change", "add", "remove")


@dataclass
class InstructionSample:
    """One edit: both images [H, W, 3] in [0, 1], the instruction, the true changed region [H, W] bool, and the
    per-object masks of each image (by colour)."""

    source: np.ndarray
    target: np.ndarray
    instruction: str
    action: str
    region: np.ndarray
    source_masks: dict[str, np.ndarray]
    target_masks: dict[str, np.ndarray]
    edited: world.SceneObject
    """The object the instruction names (for change: as it is in the source), placed."""
    new_colour: str | None = None
    """For change: the colour the object becomes."""


def object_name(obj: world.SceneObject) -> str:
    return f"{obj.colour} {obj.shape}"


def instruction_text(action: str, obj: world.SceneObject, new_colour: str | None = None) -> str:
    """'make the red circle blue', 'add a big red striped square on the left', 'remove the red triangle'."""
    if action == "change":
        return f"make the {object_name(obj)} {new_colour}"
    if action == "add":
        return f"add {obj.phrase}"
    if action == "remove":
        return f"remove the {object_name(obj)}"
    raise ValueError(f"unknown action {action!r}; expected one of {ACTIONS}")


def _render(objects: list[world.SceneObject], seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Placed objects drawn on the background and noise of ``seed`` (the same for every object list)."""
    return world.render_scene(objects, np.random.default_rng(seed))


def edit(seed: int, action: str | None = None) -> InstructionSample:
    """The edit of ``seed`` (its action drawn from the seed unless given); objects avoid held-out combinations."""
    rng = random.Random(seed)
    action = action if action is not None else rng.choice(ACTIONS)
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; expected one of {ACTIONS}")
    count = rng.choice((1, 2, 2, 3)) if action != "add" else rng.choice((1, 1, 2, 2, 3))
    objects = world.random_objects(rng, count, held_out=False)
    placement = np.random.default_rng(seed)
    placed = [world.place(obj, placement) for obj in objects]
    render_seed = seed + 1
    free_colours = [colour for colour in world.COLOURS if colour not in {obj.colour for obj in placed}]
    if action == "change":
        index = rng.randrange(count)
        new_colour = rng.choice(free_colours)
        source_objects = placed
        target_objects = [replace(obj, colour=new_colour) if i == index else obj for i, obj in enumerate(placed)]
        named = placed[index]
    elif action == "remove":
        index = rng.randrange(count)
        new_colour = None
        source_objects = placed
        target_objects = placed[:index] + placed[index + 1 :]
        named = placed[index]
    else:
        source_objects = placed
        taken = {obj.position for obj in source_objects}
        position = rng.choice([p for p in world.POSITIONS if p not in taken])
        colour = rng.choice([c for c in world.COLOURS if c not in {obj.colour for obj in source_objects}])
        new = world.SceneObject(
            rng.choice(world.SHAPES), colour, rng.choice(world.TEXTURES), position, rng.choice(list(world.OBJECT_SIZES))
        )
        named = world.place(new, placement)
        new_colour = None
        target_objects = [*source_objects, named]
    source, source_masks = _render(source_objects, render_seed)
    target, target_masks = _render(target_objects, render_seed)
    if action == "add":
        region = target_masks[named.colour].astype(bool)
    else:
        region = source_masks[named.colour].astype(bool)
    return InstructionSample(
        source,
        target,
        instruction_text(action, named, new_colour),
        action,
        region,
        source_masks,
        target_masks,
        named,
        new_colour,
    )
