"""Claim: ZONE (Li et al.) edits locally with a trained instruction model: the null-instruction attention finds the
edited object, and compositing keeps every other pixel.

On held-out edits of the toy world (change, add, remove) the lab's InstructPix2Pix-style model edits the source
through the pack's nodes, wired as the zone_local_edit example workflow: Instruction Locator records the attention
while Fused Instruct Guider samples (InstructPix2Pix's three-branch guidance, no MagicBrush), Edit Region From
Attention gives the rough region M_b (released rule, D ≤ 54), Region-IoU Select snaps it to a segment and FFT Edge
Smoother composites. The same edit is also composited from the Difference Locator's M_b (ZONE's compositing around
any editor), so the compositing is measured apart from the locator. The segments are the world's object masks (and
the background) of the image ZONE segments: the source for a removal, the intended target for a change or an
addition (a perfect segmenter of the edit, where ZONE runs SAM on the edited image).

Measured: M_b's IoU with the true changed region per action against a uniform map (whose mask is the whole image,
IoU = the region's area share), and that of the region where D > 0 (where the start token's scaled map exceeds the
end token's, the opposite of ZONE's rule); the refined mask's IoU; pixels outside the final mask that differ from
the source (ZONE: none); whether the edit is there (inside the true region the image is nearer the target than the
source, and the probe reads it: change, the new colour at the object's position and the old colour gone; add, the
new object's colour at its position; remove, its colour gone); and the mean absolute change outside the true
region, plain instruction-model output against each composite.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lab import graphs, instruction_world, metrics, probe
from lab.checks import Check
from lab.loader_node import INSTRUCT_NODE_ID, MAGICBRUSH_NODE_ID
from lab.runtime import run

STEPS = 20
TEXT_GUIDANCE = 7.5
IMAGE_GUIDANCE = 1.5
EDIT_SEED = 5000
ATTENTION = "attention"
DIFFERENCE = "difference"
ROUTES = (ATTENTION, DIFFERENCE)


@dataclass
class ZoneResult:
    """Means per measure and action (``values[measure][action]``), pixels changed outside the final masks, the
    number of edits per action, and one example per action."""

    values: dict[str, dict[str, float]]
    changed_outside_final_mask: dict[str, int]
    edits: dict[str, int]
    examples: list[dict[str, object]] = field(default_factory=list)


def segments(sample: instruction_world.InstructionSample) -> np.ndarray:
    """bool [N, H, W]: the object masks of the image ZONE segments (source for remove, target otherwise) and the
    background."""
    masks = sample.source_masks if sample.action == "remove" else sample.target_masks
    objects = np.stack([mask.astype(bool) for mask in masks.values()])
    return np.concatenate([objects, ~objects.any(0, keepdims=True)])


def input_names(stem: str) -> tuple[str, str]:
    """The file names of an edit's source image and segments in ComfyUI's input folder."""
    return f"{stem}.png", f"{stem}_segments.tiff"


def write_inputs(sample: instruction_world.InstructionSample, folder: Path, stem: str) -> tuple[str, str]:
    """Write the source image (PNG) and its segments into ``folder`` (``write_segments``); returns their names."""
    from PIL import Image

    image_name, segments_name = input_names(stem)
    Image.fromarray((np.clip(sample.source, 0, 1) * 255).round().astype(np.uint8)).save(folder / image_name)
    write_segments(sample, folder, stem)
    return image_name, segments_name


def write_segments(sample: instruction_world.InstructionSample, folder: Path, stem: str) -> str:
    """Write the edit's segments into ``folder`` as a multi-page TIFF, white inside, that LoadImage reads as a
    batch; returns its name."""
    from PIL import Image

    segments_name = input_names(stem)[1]
    pages = [Image.fromarray(mask.astype(np.uint8) * 255) for mask in segments(sample)]
    pages[0].save(folder / segments_name, save_all=True, append_images=pages[1:])
    return segments_name


@dataclass(frozen=True)
class InstructModels:
    """Links to the instruction loader's outputs, and to MagicBrush's stand-in (None: IP2P alone)."""

    model: list
    clip: list
    vae: list
    magicbrush: list | None = None


def load(graph: graphs.Graph, magicbrush: bool = False) -> InstructModels:
    loader = graph.add(INSTRUCT_NODE_ID)
    second = [graph.add(MAGICBRUSH_NODE_ID), 0] if magicbrush else None
    return InstructModels([loader, 0], [loader, 1], [loader, 2], second)


def zone_turn(
    graph: graphs.Graph,
    models: InstructModels,
    instruction: str,
    seed: int,
    source: list,
    segments_name: str,
    beta: float = 0.01,
) -> dict[str, str]:
    """One ZONE edit of the IMAGE ``source``, composited twice: from the attention's M_b (ZONE) and from the
    Difference Locator's. Returns the ids of the nodes whose outputs are read: ``edited`` (VAEDecode), ``rough``
    (Edit Region From Attention: M_b, D) and per route ``<route> rough``, ``<route> fine`` (Region-IoU Select) and
    ``<route> composite`` (FFT Edge Smoother: final mask, image). With ``models.magicbrush`` the guider fuses it
    with weight ``beta`` (ZONE Eq. 5)."""
    model = models.model
    latent = graph.add("VAEEncode", pixels=source, vae=models.vae)
    positive = graphs.encode(graph, models.clip, instruction)
    negative = graphs.encode(graph, models.clip, "")
    locator = graph.add(
        "PreciseEdit_InstructionLocator",
        model=model,
        clip=models.clip,
        instruction=instruction,
        branches="null_instruction",
        layers="zone",
    )
    second = {} if models.magicbrush is None else {"magicbrush": models.magicbrush}
    guider = graph.add(
        "PreciseEdit_FusedInstructGuider",
        model=[locator, 0],
        positive=positive,
        negative=negative,
        image=[latent, 0],
        text_guidance=TEXT_GUIDANCE,
        image_guidance=IMAGE_GUIDANCE,
        beta=beta,
        **second,
    )
    sampled = graph.add(
        "SamplerCustomAdvanced",
        noise=[graph.add("RandomNoise", noise_seed=seed), 0],
        guider=[guider, 0],
        sampler=[graph.add("KSamplerSelect", sampler_name="euler"), 0],
        sigmas=[graph.add("BasicScheduler", model=model, scheduler="normal", steps=STEPS, denoise=1.0), 0],
        latent_image=[guider, 1],
    )
    edited = graphs.decode(graph, models.vae, [sampled, 0])
    rough = graph.add(
        "PreciseEdit_EditRegionFromAttention",
        attention=[locator, 1],
        latent=[sampled, 0],
        rule="released",
        threshold=128,
    )
    segment_masks = [graph.add("ImageToMask", image=[graph.add("LoadImage", image=segments_name), 0], channel="red"), 0]
    nodes = {"edited": edited, "rough": rough}
    difference = graph.add(
        "PreciseEdit_DifferenceLocator",
        original=source,
        edited=[edited, 0],
        metric="max",
        blur_sigma=2.0,
        threshold=0.25,
        threshold_mode="relative",
    )
    for route, rough_mask in ((ATTENTION, [rough, 0]), (DIFFERENCE, [difference, 0])):
        fine = graph.add(
            "PreciseEdit_RegionIoUSelect",
            rough_mask=rough_mask,
            segments=segment_masks,
            mode="argmax",
            top_k=3,
            iou_floor=0.5,
            min_region_area=64,
            on_no_overlap="rough_mask",
        )
        nodes[f"{route} composite"] = graph.add(
            "PreciseEdit_FFTEdgeSmoother",
            original=source,
            edited=[edited, 0],
            fine_mask=[fine, 0],
            dilation_radius=4,
            low_pass_radius=200.0,
            threshold=30.0,
            closing_radius=10,
            alpha=0.6,
            scale_with_resolution=True,
        )
        nodes[f"{route} rough"], nodes[f"{route} fine"] = rough_mask[0], fine
    return nodes


def edit_graph(
    instruction: str, seed: int, image_name: str, segments_name: str, magicbrush: bool = False, beta: float = 0.01
) -> tuple[graphs.Graph, dict[str, str]]:
    """The ZONE graph on the instruction model (``zone_turn`` of the source image, fused with MagicBrush's stand-in
    by ``beta`` when ``magicbrush``), and the ids of the nodes whose outputs are read, ``source`` (LoadImage) with
    ``zone_turn``'s."""
    graph = graphs.Graph()
    models = load(graph, magicbrush)
    source = graph.add("LoadImage", image=image_name)
    nodes = zone_turn(graph, models, instruction, seed, [source, 0], segments_name, beta)
    return graph, {"source": source, **nodes}


def edit_there(image: np.ndarray, sample: instruction_world.InstructionSample) -> bool:
    """Whether ``image`` shows the instruction's edit: inside the true region it is nearer the target than the
    source, and the probe reads the edit (see the module docstring)."""
    inside = sample.region
    nearer = np.abs(image - sample.target)[inside].mean() < np.abs(image - sample.source)[inside].mean()
    obj = sample.edited
    if sample.action == "change":
        read = probe.read_colour(image, sample.new_colour).position == obj.position
        read = read and probe.read_colour(image, obj.colour).position is None
    elif sample.action == "add":
        read = probe.read_colour(image, obj.colour).position == obj.position
    else:
        read = probe.read_colour(image, obj.colour).position is None
    return bool(nearer and read)


def outside_change(image: np.ndarray, source: np.ndarray, region: np.ndarray) -> float:
    """Mean absolute change (0–1 per channel) of ``image`` from ``source`` outside ``region``."""
    return float(np.abs(image - source)[~region].mean())


def _mask(out: dict, node: str, index: int = 0) -> np.ndarray:
    return out[node][index][0].cpu().numpy() > 0.5


def measure(per_action: int = 6, seed: int = EDIT_SEED) -> ZoneResult:
    import folder_paths

    input_folder = Path(folder_paths.get_input_directory())
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    changed_outside = dict.fromkeys(ROUTES, 0)
    examples: list[dict[str, object]] = []
    for index in range(per_action * len(instruction_world.ACTIONS)):
        action = instruction_world.ACTIONS[index % len(instruction_world.ACTIONS)]
        sample = instruction_world.edit(seed + index, action)
        names = write_inputs(sample, input_folder, f"lab_zone_{seed + index}")
        graph, nodes = edit_graph(sample.instruction, seed + index, *names)
        out = run(graph.nodes, list(dict.fromkeys(nodes.values())))
        source = metrics.as_numpy_image(out[nodes["source"]][0])
        edited = metrics.as_numpy_image(out[nodes["edited"]][0])
        difference = out[nodes["rough"]][1][0, ..., 0].cpu().numpy()
        values["uniform"][action].append(float(sample.region.mean()))
        values["D > 0"][action].append(metrics.iou(difference > 0, sample.region))
        values["plain there"][action].append(float(edit_there(edited, sample)))
        values["plain outside"][action].append(outside_change(edited, source, sample.region))
        example: dict[str, object] = {"instruction": sample.instruction, "source": source, "edited": edited}
        example["truth"] = sample.region
        for route in ROUTES:
            final = _mask(out, nodes[f"{route} composite"])
            composite = metrics.as_numpy_image(out[nodes[f"{route} composite"]][1])
            changed_outside[route] += int(np.any(composite != source, axis=-1)[~final].sum())
            values[f"{route} rough"][action].append(metrics.iou(_mask(out, nodes[f"{route} rough"]), sample.region))
            values[f"{route} fine"][action].append(metrics.iou(_mask(out, nodes[f"{route} fine"]), sample.region))
            values[f"{route} there"][action].append(float(edit_there(composite, sample)))
            values[f"{route} outside"][action].append(outside_change(composite, source, sample.region))
            example[f"{route} rough"] = _mask(out, nodes[f"{route} rough"])
            example[f"{route} final"], example[f"{route} composite"] = final, composite
        if index < len(instruction_world.ACTIONS):
            examples.append(example)
    return ZoneResult(
        {
            key: {a: float(np.mean(v)) for a, v in per_action_values.items()}
            for key, per_action_values in values.items()
        },
        changed_outside,
        {a: len(v) for a, v in values["uniform"].items()},
        examples,
    )


def checks(result: ZoneResult) -> list[Check]:
    """Per action: M_b overlaps the true region at least twice as well as a uniform map (and, to show where the
    attention's signal is, so does the region where D > 0); on each route the composite keeps every edit the plain
    model made and changes less than half as much outside the region. Per route: no pixel outside the final mask
    differs from the source."""
    v = result.values
    rows = []
    for action in instruction_world.ACTIONS:
        n = f"{action}, n={result.edits[action]}"
        uniform = v["uniform"][action]
        rows += [
            Check(
                "ZONE locator",
                f"M_b IoU with the true region ({n})",
                v[f"{ATTENTION} rough"][action],
                f"uniform map {uniform:.3f}, after Region-IoU {v[f'{ATTENTION} fine'][action]:.3f}; needs 2× uniform",
                v[f"{ATTENTION} rough"][action] >= 2 * uniform,
            ),
            Check(
                "ZONE locator",
                f"IoU of D > 0, the attention difference's sign flipped ({n})",
                v["D > 0"][action],
                f"uniform map {uniform:.3f}; needs 2× uniform",
                v["D > 0"][action] >= 2 * uniform,
            ),
        ]
        for route in ROUTES:
            there, outside = v[f"{route} there"][action], v[f"{route} outside"][action]
            rows += [
                Check(
                    f"ZONE edit ({route} M_b)",
                    f"share of composites with the edit ({n})",
                    there,
                    f"plain instruction model {v['plain there'][action]:.3f}, M_b IoU {v[f'{route} rough'][action]:.3f}"
                    f", M_f IoU {v[f'{route} fine'][action]:.3f}; needs ≥ plain and > 0",
                    there >= v["plain there"][action] and there > 0,
                ),
                Check(
                    f"ZONE edit ({route} M_b)",
                    f"mean change outside the true region ({n})",
                    outside,
                    f"plain instruction model {v['plain outside'][action]:.4f}; needs less than half",
                    outside < 0.5 * v["plain outside"][action],
                ),
            ]
    for route in ROUTES:
        rows.append(
            Check(
                f"ZONE edit ({route} M_b)",
                f"pixels outside the final mask that differ from the source (n={sum(result.edits.values())})",
                float(result.changed_outside_final_mask[route]),
                "needs 0 (bit-identical)",
                result.changed_outside_final_mask[route] == 0,
            )
        )
    return rows
