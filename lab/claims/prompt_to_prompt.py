"""Claim: prompt-to-prompt edits an attribute and keeps the layout (Hertz et al.), with the pack's nodes.

Source images are the lab model's own samples of two-object captions, inverted with Null-Text Inversion; the
Prompt-to-Prompt Edit node replays them with an edited caption:

- word swap ("red" → a colour not in the scene): the layout of the edit (its non-background cells, whatever their
  colour) is compared with the source's, with cross-attention injection (cross 0.8, self 0.5, the paper's values)
  and without (cross 0, self 0: plain regeneration from the same inverted noise); the colour counts as changed when
  the probe reads the new colour at the object's position and no longer the old one;
- re-weighting the object's colour word (target = source, weights 0, 1, 3): the area in that colour should grow with
  the weight;
- refinement (a flat object becomes "striped"): the layout is kept and stripes appear, against plain regeneration.

The layout is read colour-blind on purpose. The first measure read the edited object as the cells of the new colour
only: an injected edit that keeps the object in place but half-changes its colour (yellow → yellow-green for "green")
then scored 0 however well it kept the layout, and a refinement scored best when it added no stripes. How well the
colour changes is its own row. The new-colour object IoU is still reported beside the layout IoU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lab import graphs, metrics, probe, world
from lab.checks import Check
from lab.runtime import run

WEIGHTS = (0.0, 1.0, 3.0)


@dataclass
class PromptToPromptResult:
    swap_iou_injected: float
    swap_iou_plain: float
    swap_object_iou_injected: float
    swap_object_iou_plain: float
    swap_changed_injected: float
    swap_changed_plain: float
    other_object_iou_injected: float
    other_object_iou_plain: float
    reweight_area: dict[float, float]
    refine_iou_injected: float
    refine_iou_plain: float
    refine_striped_injected: float
    refine_striped_plain: float
    scenes: int
    examples: dict[str, np.ndarray] = field(default_factory=dict)


def scene_and_new_colour(index: int, seed: int) -> tuple[world.Sample, str]:
    """A two-object training scene whose first object is flat, and a colour not in it."""
    rng_seed = seed + index
    while True:
        sample = world.scene(rng_seed, held_out=False, count=2)
        if sample.labels["objects"][0].texture == "flat":
            break
        rng_seed += 1000
    used = {obj.colour for obj in sample.labels["objects"]}
    spare = [colour for colour in world.COLOURS if colour not in used]
    return sample, spare[index % len(spare)]


def _decoded(out: dict, node: str) -> list[np.ndarray]:
    images = out[node][0].cpu().float().numpy()
    return [images[i] for i in range(images.shape[0])]


def layout(image: np.ndarray) -> np.ndarray:
    """The image's non-background cells ([16, 16] bool), any colour or stripe: where its objects are."""
    labels, names = probe.cell_labels(probe.cell_colours(image))
    return labels != names.index("background")


def _changed(edit: np.ndarray, old: str, new: str, position: str | None) -> bool:
    reading = probe.read_colour(edit, new)
    return reading.position == position and probe.read_colour(edit, old).position is None


def edit_graph(sample: world.Sample, new_colour: str, seed: int) -> tuple[graphs.Graph, dict[str, str]]:
    """Sample the scene's caption, invert it (null-text), and edit it: swap the first object's colour with and
    without injection, refine it to 'striped' with and without, re-weight its colour word. Returns the graph and the
    decoder id of each run (each decodes the batch [source reconstruction, edit])."""
    first = sample.labels["objects"][0]
    source = sample.caption
    swapped = source.replace(f" {first.colour} ", f" {new_colour} ", 1)
    refined = source.replace(f"{first.colour} {first.shape}", f"{first.colour} striped {first.shape}", 1)
    graph = graphs.Graph()
    models = graphs.load(graph)
    positive = graphs.encode(graph, models.clip, source)
    negative = graphs.encode(graph, models.clip, "")
    latent = graphs.sample(graph, models.model, positive, negative, seed)
    inversion = graphs.invert(graph, models, positive, negative, latent, source)
    runs = {
        "swap_inj": graphs.edit(graph, models, inversion, source, swapped, "replace"),
        "swap_plain": graphs.edit(graph, models, inversion, source, swapped, "replace", 0.0, 0.0),
        "refine_inj": graphs.edit(graph, models, inversion, source, refined, "refine"),
        "refine_plain": graphs.edit(graph, models, inversion, source, refined, "refine", 0.0, 0.0),
    }
    for weight in WEIGHTS:
        runs[f"weight_{weight}"] = graphs.edit(
            graph, models, inversion, source, source, "replace", word_weights=f"{first.colour}:{weight}"
        )
    return graph, {name: graphs.decode(graph, models.vae, link) for name, link in runs.items()}


def measure(count: int = 4, seed: int = 700) -> PromptToPromptResult:
    swap_inj, swap_plain, changed_inj, changed_plain, other_inj, other_plain = [], [], [], [], [], []
    object_inj, object_plain = [], []
    refine_inj, refine_plain, striped_inj, striped_plain = [], [], [], []
    areas: dict[float, list[float]] = {weight: [] for weight in WEIGHTS}
    examples: dict[str, np.ndarray] = {}
    for index in range(count):
        sample, new_colour = scene_and_new_colour(index, seed)
        first, second = sample.labels["objects"]
        graph, decoders = edit_graph(sample, new_colour, seed + index)
        out = run(graph.nodes, list(decoders.values()))
        images = {name: _decoded(out, node) for name, node in decoders.items()}
        reconstruction = images["swap_inj"][0]
        before = probe.read_colour(reconstruction, first.colour)
        if before.position is None:
            continue
        region = metrics.to_pixels(before.mask)
        other = metrics.object_region(reconstruction, second.colour)
        for name, ious, objects, changed, others in (
            ("swap_inj", swap_inj, object_inj, changed_inj, other_inj),
            ("swap_plain", swap_plain, object_plain, changed_plain, other_plain),
        ):
            edit = images[name][1]
            ious.append(metrics.iou(layout(reconstruction), layout(edit)))
            objects.append(metrics.iou(region, metrics.object_region(edit, new_colour)))
            changed.append(float(_changed(edit, first.colour, new_colour, before.position)))
            others.append(metrics.iou(other, metrics.object_region(edit, second.colour)))
        for name, ious, striped in (
            ("refine_inj", refine_inj, striped_inj),
            ("refine_plain", refine_plain, striped_plain),
        ):
            edit = images[name][1]
            ious.append(metrics.iou(layout(reconstruction), layout(edit)))
            striped.append(float(probe.read_colour(edit, first.colour).texture == "striped"))
        for weight in WEIGHTS:
            areas[weight].append(float(probe.read_colour(images[f"weight_{weight}"][1], first.colour).cells))
        if not examples:
            examples = {
                "source": reconstruction,
                "swap injected": images["swap_inj"][1],
                "swap plain": images["swap_plain"][1],
                "refine injected": images["refine_inj"][1],
                **{f"weight {weight}": images[f"weight_{weight}"][1] for weight in WEIGHTS},
            }
    mean = lambda values: float(np.mean(values)) if values else float("nan")  # noqa: E731
    return PromptToPromptResult(
        mean(swap_inj),
        mean(swap_plain),
        mean(object_inj),
        mean(object_plain),
        mean(changed_inj),
        mean(changed_plain),
        mean(other_inj),
        mean(other_plain),
        {weight: mean(values) for weight, values in areas.items()},
        mean(refine_inj),
        mean(refine_plain),
        mean(striped_inj),
        mean(striped_plain),
        len(swap_inj),
        examples,
    )


def checks(result: PromptToPromptResult) -> list[Check]:
    """Injection keeps the edited object's layout better than regeneration and changes its colour; re-weighting
    moves the word's area monotonically; refinement keeps the layout."""
    areas = [result.reweight_area[weight] for weight in WEIGHTS]
    monotone = all(b >= a for a, b in zip(areas, areas[1:], strict=False)) and areas[-1] > areas[0]
    n = f"n={result.scenes}"
    return [
        Check(
            "p2p word swap",
            f"layout IoU source vs edit (non-background cells), injected ({n})",
            result.swap_iou_injected,
            f"plain regeneration {result.swap_iou_plain:.3f}; needs more (new-colour object IoU "
            f"{result.swap_object_iou_injected:.3f} injected, {result.swap_object_iou_plain:.3f} plain)",
            result.swap_iou_injected > result.swap_iou_plain,
        ),
        Check(
            "p2p word swap",
            "share of edits with the new colour in place",
            result.swap_changed_injected,
            f"plain regeneration {result.swap_changed_plain:.3f}; needs ≥ 0.5",
            result.swap_changed_injected >= 0.5,
        ),
        Check(
            "p2p word swap",
            "IoU of the untouched object, injected",
            result.other_object_iou_injected,
            f"plain regeneration {result.other_object_iou_plain:.3f}; needs ≥ that",
            result.other_object_iou_injected >= result.other_object_iou_plain,
        ),
        Check(
            "p2p re-weight",
            f"cells in the colour at weight {WEIGHTS[-1]} minus weight {WEIGHTS[0]}",
            areas[-1] - areas[0],
            "areas " + ", ".join(f"w={w}: {a:.1f}" for w, a in zip(WEIGHTS, areas, strict=True)) + "; monotone",
            monotone,
        ),
        Check(
            "p2p refine",
            "layout IoU source vs 'striped' edit (non-background cells), injected",
            result.refine_iou_injected,
            f"plain regeneration {result.refine_iou_plain:.3f}; needs more",
            result.refine_iou_injected > result.refine_iou_plain,
        ),
        Check(
            "p2p refine",
            "share of refined objects read as striped, injected",
            result.refine_striped_injected,
            f"plain regeneration {result.refine_striped_plain:.3f}; needs ≥ 0.5",
            result.refine_striped_injected >= 0.5,
        ),
    ]
