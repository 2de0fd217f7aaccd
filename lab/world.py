"""The lab's toy world: captioned scenes of flat shapes and cartoon portraits, deterministic from a seed.

Every sample is a 128×128 RGB image in [0, 1] (ComfyUI's IMAGE layout, ``[H, W, 3]``), its caption, one
ground-truth mask per object (the pixels where that object is visible) and the attribute labels the caption was made
from. Stripes and the parts of a portrait are drawn on the 8-pixel grid of the cell VAE, so that what a caption says
survives the 8×8 average pooling of the latent.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

SIZE = 128
CELL = 8

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.88, 0.12, 0.12),
    "green": (0.10, 0.68, 0.18),
    "blue": (0.12, 0.28, 0.92),
    "yellow": (0.95, 0.88, 0.10),
    "purple": (0.58, 0.16, 0.78),
    "orange": (0.98, 0.52, 0.06),
}
SHAPES = ("circle", "square", "triangle")
TEXTURES = ("flat", "striped")
OBJECT_SIZES = {"small": 14.0, "big": 22.0}
# Centres as fractions of the image side: far enough apart that neighbouring big objects barely touch.
POSITIONS: dict[str, tuple[float, float]] = {
    "left": (0.25, 0.5),
    "right": (0.75, 0.5),
    "top": (0.5, 0.25),
    "bottom": (0.5, 0.75),
}
POSITION_PHRASES = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom"}
STRIPE_COLOUR = (0.96, 0.96, 0.96)
JITTER = 6.0
NOISE = 0.03

FACE_SHAPES = ("round", "oval", "square")
SKIN_TONES: dict[str, tuple[float, float, float]] = {
    "pale": (0.97, 0.85, 0.74),
    "tan": (0.84, 0.62, 0.42),
    "dark": (0.40, 0.26, 0.16),
}
HAIR_COLOURS: dict[str, tuple[float, float, float]] = {
    "black": (0.06, 0.06, 0.07),
    "blonde": (0.98, 0.86, 0.42),
    "ginger": (0.86, 0.38, 0.10),
    "white": (0.94, 0.94, 0.96),
}
OUTFIT_COLOURS = ("red", "green", "blue", "yellow", "purple")
HAT_COLOUR = (0.16, 0.20, 0.42)
GLASSES_COLOUR = (0.05, 0.05, 0.05)
MOUTH_COLOUR = (0.55, 0.08, 0.10)
EYE_COLOUR = (0.10, 0.10, 0.12)

# One in eight (colour, shape, texture, position) objects never appears in training scenes: the held-out captions
# the probe reads back are made of them.
HELD_OUT_SHARE = 0.125
HELD_OUT_SEED = 1234


@dataclass(frozen=True)
class SceneObject:
    """One object of a scene: its attributes and where it was drawn (centre and radius in pixels)."""

    shape: str
    colour: str
    texture: str
    position: str
    size: str
    centre: tuple[float, float] = (0.0, 0.0)
    radius: float = 0.0

    @property
    def phrase(self) -> str:
        """The caption's words for this object: 'a big red striped circle on the left'."""
        texture = " striped" if self.texture == "striped" else ""
        return f"a {self.size} {self.colour}{texture} {self.shape} {POSITION_PHRASES[self.position]}"

    @property
    def combination(self) -> tuple[str, str, str, str]:
        return (self.colour, self.shape, self.texture, self.position)


@dataclass
class Sample:
    """An image with its caption, one mask per object (``masks[name]``, ``[H, W]`` in {0, 1}) and labels."""

    image: np.ndarray
    caption: str
    masks: dict[str, np.ndarray]
    labels: dict[str, object] = field(default_factory=dict)
    kind: str = "scene"


def all_combinations() -> list[tuple[str, str, str, str]]:
    return [(c, s, t, p) for c in COLOURS for s in SHAPES for t in TEXTURES for p in POSITIONS]


def held_out_combinations() -> frozenset[tuple[str, str, str, str]]:
    """The object combinations training never shows (a fixed, seeded eighth of all of them)."""
    combos = all_combinations()
    rng = random.Random(HELD_OUT_SEED)
    return frozenset(rng.sample(combos, round(len(combos) * HELD_OUT_SHARE)))


def background(rng: np.random.Generator) -> np.ndarray:
    """A tinted grey background with per-pixel noise (noise is added to the whole image at the end)."""
    grey = rng.uniform(0.35, 0.62)
    tint = rng.uniform(-0.07, 0.07, size=3)
    return np.broadcast_to(np.clip(grey + tint, 0, 1), (SIZE, SIZE, 3)).astype(np.float32).copy()


def _grid() -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    return xs + 0.5, ys + 0.5


def shape_mask(shape: str, centre: tuple[float, float], radius: float) -> np.ndarray:
    """Pixels inside a circle, an axis-aligned square or an upward triangle of the given centre and radius."""
    xs, ys = _grid()
    dx, dy = xs - centre[0], ys - centre[1]
    if shape == "circle":
        inside = dx**2 + dy**2 <= radius**2
    elif shape == "square":
        half = radius * 0.86
        inside = (np.abs(dx) <= half) & (np.abs(dy) <= half)
    elif shape == "triangle":
        top, bottom = -radius, radius * 0.85
        depth = (dy - top) / (bottom - top)
        inside = (dy >= top) & (dy <= bottom) & (np.abs(dx) <= depth * radius * 1.05)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
    return inside


def stripes() -> np.ndarray:
    """Horizontal stripes on the cell grid: every other 8-pixel row band."""
    _, ys = _grid()
    return (ys // CELL).astype(int) % 2 == 1


def _finish(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.clip(image + rng.normal(0, NOISE, image.shape).astype(np.float32), 0, 1)


def render_scene(objects: list[SceneObject], rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Draw placed objects in order on a fresh background; masks are what stays visible of each."""
    image = background(rng)
    visible: list[np.ndarray] = []
    striped = stripes()
    for obj in objects:
        inside = shape_mask(obj.shape, obj.centre, obj.radius)
        colour = np.array(COLOURS[obj.colour], np.float32)
        image[inside] = colour
        if obj.texture == "striped":
            image[inside & striped] = np.array(STRIPE_COLOUR, np.float32)
        visible = [mask & ~inside for mask in visible] + [inside]
    masks = {obj.colour: mask.astype(np.float32) for obj, mask in zip(objects, visible, strict=True)}
    return _finish(image, rng), masks


def place(obj: SceneObject, rng: np.random.Generator) -> SceneObject:
    """The object with a jittered centre at its position and the radius of its size."""
    fx, fy = POSITIONS[obj.position]
    centre = (fx * SIZE + rng.uniform(-JITTER, JITTER), fy * SIZE + rng.uniform(-JITTER, JITTER))
    radius = OBJECT_SIZES[obj.size] * rng.uniform(0.95, 1.08)
    return SceneObject(obj.shape, obj.colour, obj.texture, obj.position, obj.size, centre, radius)


def scene_from_objects(objects: list[SceneObject], seed: int) -> Sample:
    """Render given objects (each its own colour and position) with a seed for jitter, background and noise."""
    colours = [obj.colour for obj in objects]
    positions = [obj.position for obj in objects]
    if len(set(colours)) != len(colours) or len(set(positions)) != len(positions):
        raise ValueError("every object of a scene needs its own colour and its own position")
    rng = np.random.default_rng(seed)
    placed = [place(obj, rng) for obj in objects]
    image, masks = render_scene(placed, rng)
    caption = " and ".join(obj.phrase for obj in placed)
    labels = {"objects": placed}
    return Sample(image, caption, masks, labels, "scene")


def random_objects(rng: random.Random, count: int, held_out: bool | None) -> list[SceneObject]:
    """``count`` objects with distinct colours and positions. ``held_out``: True puts a held-out combination first,
    False avoids every held-out combination, None allows anything."""
    excluded = held_out_combinations()
    while True:
        colours = rng.sample(list(COLOURS), count)
        positions = rng.sample(list(POSITIONS), count)
        objects = [
            SceneObject(rng.choice(SHAPES), c, rng.choice(TEXTURES), p, rng.choice(list(OBJECT_SIZES)))
            for c, p in zip(colours, positions, strict=True)
        ]
        flags = [obj.combination in excluded for obj in objects]
        if held_out is None or (held_out and flags[0]) or (held_out is False and not any(flags)):
            return objects


def scene(seed: int, held_out: bool | None = False, count: int | None = None) -> Sample:
    """A scene of 1–3 objects from ``seed`` (training scenes by default: no held-out combination)."""
    rng = random.Random(seed)
    count = count if count is not None else rng.choice((1, 2, 2, 3))
    return scene_from_objects(random_objects(rng, count, held_out), seed)


@dataclass(frozen=True)
class Face:
    """A portrait's attributes: face shape and skin tone are the identity, the rest can be edited."""

    face_shape: str
    skin: str
    hair: str
    outfit: str
    glasses: bool
    smile: bool
    hat: bool

    @property
    def caption(self) -> str:
        extras = [word for flag, word in ((self.glasses, "glasses"), (self.hat, "a hat")) if flag]
        article = "an" if self.face_shape == "oval" else "a"
        text = f"a portrait of {article} {self.face_shape} {self.skin} face"
        text += f" with {self.hair} hair and a {self.outfit} shirt"
        text += "".join(f", with {word}" for word in extras)
        return text + (", smiling" if self.smile else "")


def face_mask(face_shape: str, cx: float, cy: float) -> np.ndarray:
    xs, ys = _grid()
    dx, dy = xs - cx, ys - cy
    if face_shape == "round":
        return dx**2 + dy**2 <= 27.0**2
    if face_shape == "oval":
        return (dx / 21.0) ** 2 + (dy / 31.0) ** 2 <= 1.0
    if face_shape == "square":
        return (np.abs(dx) <= 25.0) & (np.abs(dy) <= 26.0)
    raise ValueError(f"unknown face shape {face_shape!r}; expected one of {FACE_SHAPES}")


def _box(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    xs, ys = _grid()
    return (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)


def render_portrait(face: Face, seed: int) -> Sample:
    """Draw a portrait: shirt, hair behind the face, face, eyes or glasses, mouth, hat; one mask per part."""
    rng = np.random.default_rng(seed)
    image = background(rng)
    cx, cy = 64.0 + rng.uniform(-3, 3), 60.0 + rng.uniform(-2, 2)
    parts: dict[str, np.ndarray] = {}
    parts["shirt"] = _box(cx - 44, 104, cx + 44, SIZE)
    face_px = face_mask(face.face_shape, cx, cy)
    hair = _box(cx - 34, cy - 36, cx + 34, cy + 14) & ~face_px | (face_px & _box(0, 0, SIZE, cy - 16))
    parts["hair"] = hair
    parts["face"] = face_px & ~hair
    eyes = _box(cx - 18, cy - 8, cx - 6, cy) | _box(cx + 6, cy - 8, cx + 18, cy)
    parts["eyes"] = eyes
    if face.glasses:
        parts["glasses"] = _box(cx - 24, cy - 10, cx + 24, cy + 2)
    mouth = _box(cx - 14, cy + 8, cx + 14, cy + 16) if face.smile else _box(cx - 7, cy + 11, cx + 7, cy + 14)
    parts["mouth"] = mouth
    if face.hat:
        parts["hat"] = _box(cx - 30, cy - 52, cx + 30, cy - 22) | _box(cx - 42, cy - 26, cx + 42, cy - 18)
    colours = {
        "shirt": COLOURS[face.outfit],
        "hair": HAIR_COLOURS[face.hair],
        "face": SKIN_TONES[face.skin],
        "eyes": EYE_COLOUR,
        "glasses": GLASSES_COLOUR,
        "mouth": MOUTH_COLOUR,
        "hat": HAT_COLOUR,
    }
    visible: dict[str, np.ndarray] = {}
    for name, mask in parts.items():
        image[mask] = np.array(colours[name], np.float32)
        visible = {key: value & ~mask for key, value in visible.items()}
        visible[name] = mask
    visible["person"] = np.any(np.stack([visible[name] for name in ("hair", "face", "eyes", "mouth")]), 0)
    if face.glasses:
        visible["person"] |= visible["glasses"]
    masks = {name: mask.astype(np.float32) for name, mask in visible.items()}
    return Sample(_finish(image, rng), face.caption, masks, {"face": face}, "portrait")


def random_face(rng: random.Random) -> Face:
    return Face(
        rng.choice(FACE_SHAPES),
        rng.choice(list(SKIN_TONES)),
        rng.choice(list(HAIR_COLOURS)),
        rng.choice(OUTFIT_COLOURS),
        rng.random() < 0.5,
        rng.random() < 0.5,
        rng.random() < 0.5,
    )


def portrait(seed: int) -> Sample:
    """A portrait with independently drawn attributes from ``seed``."""
    return render_portrait(random_face(random.Random(seed)), seed)


def training_sample(seed: int, portrait_share: float) -> Sample:
    """What training draws: a portrait with probability ``portrait_share``, else a training scene."""
    if random.Random(seed ^ 0x5EED).random() < portrait_share:
        return portrait(seed)
    return scene(seed, held_out=False)
