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


def _changed(
    rng: random.Random, action: str, objects: list[world.SceneObject], placement: np.random.Generator, index: int
) -> tuple[list[world.SceneObject], world.SceneObject, str | None]:
    """The objects after ``action`` on ``objects[index]`` (change, remove) or a new object (add, ``index`` unused),
    the object the instruction names and, for change, the new colour; colours and positions stay distinct."""
    used = {obj.colour for obj in objects}
    if action == "change":
        new_colour = rng.choice([colour for colour in world.COLOURS if colour not in used])
        return (
            [replace(obj, colour=new_colour) if i == index else obj for i, obj in enumerate(objects)],
            objects[index],
            new_colour,
        )
    if action == "remove":
        return objects[:index] + objects[index + 1 :], objects[index], None
    taken = {obj.position for obj in objects}
    position = rng.choice([p for p in world.POSITIONS if p not in taken])
    colour = rng.choice([c for c in world.COLOURS if c not in used])
    new = world.SceneObject(
        rng.choice(world.SHAPES), colour, rng.choice(world.TEXTURES), position, rng.choice(list(world.OBJECT_SIZES))
    )
    named = world.place(new, placement)
    return [*objects, named], named, None


def _sample(
    action: str,
    source_objects: list[world.SceneObject],
    target_objects: list[world.SceneObject],
    named: world.SceneObject,
    new_colour: str | None,
    render_seed: int,
) -> InstructionSample:
    source, source_masks = _render(source_objects, render_seed)
    target, target_masks = _render(target_objects, render_seed)
    region = (target_masks if action == "add" else source_masks)[named.colour].astype(bool)
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
    index = rng.randrange(count) if action != "add" else 0
    target_objects, named, new_colour = _changed(rng, action, placed, placement, index)
    return _sample(action, placed, target_objects, named, new_colour, seed + 1)


CHAIN = ("change", "add", "remove")


def chain(seed: int) -> list[InstructionSample]:
    """Three edits in a row on one scene of two or three objects (``CHAIN``: change one object, add one, remove
    another original one): each edit's source is the previous one's target, all drawn on one background and noise,
    so each turn changes exactly its own true region."""
    rng = random.Random(seed)
    count = rng.choice((2, 3))
    placement = np.random.default_rng(seed)
    objects = [world.place(obj, placement) for obj in world.random_objects(rng, count, held_out=False)]
    changed, removed = rng.sample(range(count), 2)
    turns = []
    for action, index in zip(CHAIN, (changed, 0, removed), strict=True):
        target, named, new_colour = _changed(rng, action, objects, placement, index)
        turns.append(_sample(action, objects, target, named, new_colour, seed + 1))
        objects = target
    return turns
