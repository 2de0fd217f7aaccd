"""Claim: null-text inversion reconstructs an image far better than plain DDIM inversion at the same guidance, for
an image the model generated and for one it never generated (a world render), and the inverted real image can then
be edited with prompt-to-prompt (Mokady et al.).

Errors are mean absolute differences of the decoded reconstruction from the decoded source latent, in pixel units
(0–1), from the pack's Null-Text Inversion (null-text mode and plain DDIM mode) and Inversion Reconstruct. The edit
swaps the colour word of the real image's first object; inside the object's ground-truth mask the new colour should
appear, outside it the image should stay as reconstructed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lab import graphs, metrics, world
from lab.checks import Check
from lab.runtime import run, save_input_image


@dataclass
class InversionResult:
    error: dict[str, float]
    edit_changed: float
    edit_outside_change: float
    edit_inside_change: float
    images: int
    examples: dict[str, np.ndarray] = field(default_factory=dict)


def inversion_graph(
    sample: world.Sample, kind: str, seed: int, new_colour: str, image_name: str
) -> tuple[graphs.Graph, dict[str, str]]:
    """Source latent (sampled, or the world render ``image_name`` encoded), inverted in null-text and plain DDIM
    mode, each reconstructed; the real image's null-text inversion also edited (first object's colour swapped).
    Returns the graph and the decoder id of the source, each reconstruction and the edit."""
    graph = graphs.Graph()
    models = graphs.load(graph)
    caption = sample.caption
    positive = graphs.encode(graph, models.clip, caption)
    negative = graphs.encode(graph, models.clip, "")
    if kind == "generated":
        latent = graphs.sample(graph, models.model, positive, negative, seed)
    else:
        latent = graphs.encode_image(graph, models.vae, image_name)
    nodes = {"source": graphs.decode(graph, models.vae, latent)}
    for mode in (graphs.NULL_TEXT, graphs.PLAIN_DDIM):
        inversion = graphs.invert(graph, models, positive, negative, latent, caption, mode)
        nodes[mode] = graphs.decode(graph, models.vae, graphs.reconstruct(graph, models, inversion, positive))
        if mode == graphs.NULL_TEXT and kind == "real":
            first = sample.labels["objects"][0]
            target = caption.replace(f" {first.colour} ", f" {new_colour} ", 1)
            nodes["edit"] = graphs.decode(graph, models.vae, graphs.edit(graph, models, inversion, caption, target))
    return graph, nodes


def _run_one(sample: world.Sample, kind: str, seed: int, new_colour: str) -> dict[str, np.ndarray]:
    image_name = save_input_image(sample.image, f"lab_nti_{seed}.png") if kind == "real" else ""
    graph, nodes = inversion_graph(sample, kind, seed, new_colour, image_name)
    out = run(graph.nodes, list(nodes.values()))
    return {name: out[node][0].cpu().float().numpy() for name, node in nodes.items()}


def measure(count: int = 2, seed: int = 900) -> InversionResult:
    errors: dict[str, list[float]] = {}
    changed, outside, inside = [], [], []
    examples: dict[str, np.ndarray] = {}
    for index in range(count):
        sample = world.scene(seed + index, held_out=False, count=2)
        used = {obj.colour for obj in sample.labels["objects"]}
        new_colour = next(colour for colour in world.COLOURS if colour not in used)
        for kind in ("generated", "real"):
            images = _run_one(sample, kind, seed + index, new_colour)
            source = images["source"][0]
            for mode in (graphs.NULL_TEXT, graphs.PLAIN_DDIM):
                key = f"{kind} {mode}"
                errors.setdefault(key, []).append(float(np.abs(images[mode][0] - source).mean()))
            if kind == "real":
                reconstruction, edit = images["edit"][0], images["edit"][1]
                first = sample.labels["objects"][0]
                truth = sample.masks[first.colour].astype(bool)
                objects = np.any([mask.astype(bool) for mask in sample.masks.values()], axis=0)
                region = metrics.object_region(edit, new_colour)
                changed.append(float((region & truth).sum() / truth.sum()))
                diff = np.abs(edit - reconstruction).mean(-1)
                outside.append(float(diff[~objects].mean()))
                inside.append(float(diff[truth].mean()))
                if not examples:
                    examples = {
                        "real image": sample.image,
                        "null-text reconstruction": images[graphs.NULL_TEXT][0],
                        "plain DDIM reconstruction": images[graphs.PLAIN_DDIM][0],
                        "p2p edit": edit,
                    }
    return InversionResult(
        {key: float(np.mean(values)) for key, values in errors.items()},
        float(np.mean(changed)),
        float(np.mean(outside)),
        float(np.mean(inside)),
        count,
        examples,
    )


def checks(result: InversionResult) -> list[Check]:
    """Null-text reconstruction error is at most half of plain DDIM's, for generated and real images; the real
    image's edit puts the new colour inside the object and changes little outside it."""
    rows = []
    for kind in ("generated", "real"):
        null_text, ddim = result.error[f"{kind} null_text"], result.error[f"{kind} plain_ddim"]
        rows.append(
            Check(
                "null-text inversion",
                f"reconstruction error, {kind} image (mean |Δpixel|, n={result.images})",
                null_text,
                f"plain DDIM {ddim:.4f}; needs ≤ half",
                null_text <= 0.5 * ddim,
            )
        )
    rows.append(
        Check(
            "null-text inversion + p2p",
            "share of the real object's mask in the new colour",
            result.edit_changed,
            "needs ≥ 0.5",
            result.edit_changed >= 0.5,
        )
    )
    rows.append(
        Check(
            "null-text inversion + p2p",
            "mean |Δpixel| outside the objects (edit vs reconstruction)",
            result.edit_outside_change,
            f"inside the edited object {result.edit_inside_change:.3f}; needs < a quarter of it",
            result.edit_outside_change < 0.25 * result.edit_inside_change,
        )
    )
    return rows
