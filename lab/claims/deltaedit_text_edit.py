"""Claim: DeltaEdit (Lyu et al.): a Delta Mapper trained on images alone follows text directions, disentangled.

Wired as the deltaedit_unclip example workflow, on the lab's models: Joint CLIP Loader reads the toy joint CLIP
(``lab.models.toy_clip``, written into models/clip_joint), Delta Mapper Trainer trains the mapper text-free on a
folder of toy portraits (the toy CLIP's vision tower, the unCLIP model's CLIP_VISION, gives the codes s), CLIP Delta
Direction turns two texts into Δt, Apply DeltaEdit edits each source portrait's image embedding, and
unCLIPConditioning → KSampler renders it with the lab's unCLIP UNet (``lab.models.unclip_unet``); the unedited
embedding is rendered beside it with the same seed. The pack's other method, the straightforward baseline (Δs =
‖s‖ Δt, the text delta used as the image delta), renders from the same sources and seeds.

Edits, on held-out portraits that have the source value: hair black → blonde, shirt red → blue, no glasses → glasses,
no hat → hat, no smile → smile; the texts name that attribute only ('a portrait of a face with black hair' → 'a
portrait of a face with blonde hair'), without the 79 prompt templates (the toy encoder never read them). The
portrait probe reads every attribute of each render in the source's layout. Measured per edit and method: the
target attribute shows the target value (edit success; the unedited render of the same seed can show it already when
the reconstruction misses, so the edit effect is the success minus that), and the other six attributes read as in
the unedited render (kept); the reconstruction: the unedited render reads as the source portrait, per attribute. And
the disentanglement threshold: the fraction of the 64 channels Apply DeltaEdit changes (its CHANNELS_KEPT output)
at its default (relative ρ = 0.25) and at the paper's absolute τ = 0.03, each rendered, with the edit effect of
both: the default is the one that lets every edit through.
"""

from __future__ import annotations

import random
import shutil
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from lab import graphs, portrait_captions, probe_portrait, world
from lab.checks import Check
from lab.loader_node import UNCLIP_NODE_ID
from lab.metrics import as_numpy_image
from lab.runtime import run, save_input_image

STEPS = 20
GUIDANCE = 5.0
SEED = 2000
SOURCES_PER_EDIT = 6
MAPPER_STEPS = 2000
MAPPER_IMAGES = 400
FOLDER = "lab_deltaedit_portraits"
CLIP_NAME = "lab_toy_clip/model.safetensors"
CLIP_JOINT_FOLDER = "clip_joint"
PAPER_THRESHOLD = 0.03
DEFAULT_RELATIVE = 0.25
MAPPER = "delta_mapper"
STRAIGHTFORWARD = "straightforward"
PAPER = "delta_mapper_paper_threshold"
# Each rendered variant: Apply DeltaEdit's method and threshold mode.
VARIANTS = {MAPPER: (MAPPER, "relative"), STRAIGHTFORWARD: (STRAIGHTFORWARD, "relative"), PAPER: (MAPPER, "absolute")}
SOURCE_OFFSET = 10_000
SUCCESS = 0.5
KEPT = 0.8
ZEROED = 0.05


@dataclass(frozen=True)
class Edit:
    """One DeltaEdit: the Face field it changes, from ``source`` to ``target``, and the texts of the direction."""

    attribute: str
    source: object
    target: object

    def text(self, value: object) -> str:
        face = replace(world.Face("round", "pale", "black", "red", False, False, False), **{self.attribute: value})
        return portrait_captions.describe("", [portrait_captions.phrase(face, self.attribute)])

    @property
    def name(self) -> str:
        return f"{self.attribute} {self.source} → {self.target}"


EDITS = (
    Edit("hair", "black", "blonde"),
    Edit("outfit", "red", "blue"),
    Edit("glasses", False, True),
    Edit("hat", False, True),
    Edit("smile", False, True),
)


@dataclass
class DeltaEditResult:
    """Per variant and edit: edit success (``success["unedited"]``: how often the unedited render already shows the
    target value), attributes kept and the share of channels changed (means over the sources); reconstruction per
    attribute; one example per edit."""

    success: dict[str, dict[str, float]]
    kept: dict[str, dict[str, float]]
    reconstruction: dict[str, float]
    channels: dict[str, dict[str, float]]
    sources: int
    examples: list[dict[str, object]] = field(default_factory=list)


def source_portrait(edit: Edit, index: int) -> tuple[world.Face, int]:
    """A held-out portrait (seed past the training's) that has the edit's source value."""
    from lab.train_deltaedit import HELD_OUT_SEEDS

    seed = HELD_OUT_SEEDS + SOURCE_OFFSET + 100 * EDITS.index(edit) + index
    return replace(world.random_face(random.Random(seed)), **{edit.attribute: edit.source}), seed


def install_joint_clip(clip_joint_dir: Path) -> Path:
    """Copy the toy joint CLIP's save_pretrained folder into a models/clip_joint folder (where Joint CLIP Loader
    lists it as ``CLIP_NAME``)."""
    from lab.train_deltaedit import toy_clip_folder

    source = toy_clip_folder().parent
    target = clip_joint_dir / Path(CLIP_NAME).parent
    shutil.copytree(source, target, dirs_exist_ok=True)
    return target / Path(CLIP_NAME).name


def write_training_folder(input_dir: Path, count: int = MAPPER_IMAGES) -> Path:
    """Write ``count`` training portraits as PNGs into ``input_dir/FOLDER`` (the Delta Mapper's text-free data)."""
    from PIL import Image

    from lab.train_deltaedit import TRAINING_SEEDS

    folder = input_dir / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        path = folder / f"portrait_{index:04d}.png"
        if not path.is_file():
            image = world.portrait(TRAINING_SEEDS + index).image
            Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8)).save(path)
    return folder


def _sample(graph: graphs.Graph, models: dict[str, list], vision_output: list, seed: int) -> str:
    conditioning = graph.add(
        "unCLIPConditioning",
        conditioning=models["empty"],
        clip_vision_output=vision_output,
        strength=1.0,
        noise_augmentation=0.0,
    )
    latent = graphs.sample(graph, models["model"], [conditioning, 0], models["empty"], seed, STEPS, GUIDANCE)
    return graphs.decode(graph, models["vae"], latent)


def edit_graph(
    sources: dict[Edit, list[tuple[str, int]]], mapper_steps: int = MAPPER_STEPS
) -> tuple[graphs.Graph, dict[tuple, str]]:
    """The DeltaEdit graph for every edit and source image (``(file name, seed)``): returns it and the ids of the
    nodes read: ``("unedited", edit, i)`` and ``(variant, edit, i)`` (VAEDecode), ``("apply", variant, edit, i)``
    (Apply DeltaEdit: the edited embedding and CHANNELS_KEPT)."""
    graph = graphs.Graph()
    loader = graph.add(UNCLIP_NODE_ID)
    models = {"model": [loader, 0], "vision": [loader, 1], "vae": [loader, 3]}
    models["empty"] = graphs.encode(graph, [loader, 2], "")
    joint = [graph.add("PreciseEdit_JointCLIPLoader", clip_name=CLIP_NAME), 0]
    mapper = graph.add(
        "PreciseEdit_DeltaMapperTrainer",
        joint_clip=joint,
        clip_vision=models["vision"],
        folder=FOLDER,
        steps=mapper_steps,
        batch_size=64,
        learning_rate=0.5,
        seed=0,
        filename_prefix="lab/deltaedit",
    )
    nodes: dict[tuple, str] = {}
    for edit, images in sources.items():
        delta = graph.add(
            "PreciseEdit_CLIPDeltaDirection",
            joint_clip=joint,
            mode="texts",
            source_text=edit.text(edit.source),
            target_text=edit.text(edit.target),
            prompt_templates=False,
        )
        for index, (name, seed) in enumerate(images):
            image = [graph.add("LoadImage", image=name), 0]
            encoded = [graph.add("CLIPVisionEncode", clip_vision=models["vision"], image=image, crop="center"), 0]
            nodes[("unedited", edit, index)] = _sample(graph, models, encoded, seed)
            for variant, (method, mode) in VARIANTS.items():
                applied = graph.add(
                    "PreciseEdit_ApplyDeltaEdit",
                    delta=[delta, 0],
                    method=method,
                    strength=1.0,
                    threshold=PAPER_THRESHOLD,
                    delta_mapper=[mapper, 0],
                    joint_clip=joint,
                    clip_vision=models["vision"],
                    image=image,
                    clip_vision_output=encoded,
                    threshold_mode=mode,
                    relative_threshold=DEFAULT_RELATIVE,
                )
                nodes[(variant, edit, index)] = _sample(graph, models, [applied, 0], seed)
                nodes[("apply", variant, edit, index)] = applied
    return graph, nodes


def readings(image: np.ndarray, face: world.Face, seed: int) -> dict[str, object]:
    """Every attribute of a render, read by the portrait probe in the source's layout."""
    return {name: probe_portrait.read_attribute(image, face, seed, name) for name in probe_portrait.VALUES}


def prepare_inputs(per_edit: int) -> dict[Edit, list[tuple[str, int]]]:
    """The joint CLIP in models/clip_joint, the training folder and the source images in the input folder."""
    import folder_paths

    install_joint_clip(Path(folder_paths.get_folder_paths(CLIP_JOINT_FOLDER)[0]))
    write_training_folder(Path(folder_paths.get_input_directory()))
    sources: dict[Edit, list[tuple[str, int]]] = {}
    for edit in EDITS:
        sources[edit] = []
        for index in range(per_edit):
            face, seed = source_portrait(edit, index)
            name = save_input_image(world.render_portrait(face, seed).image, f"lab_deltaedit_{seed}.png")
            sources[edit].append((name, seed))
    return sources


def measure(per_edit: int = SOURCES_PER_EDIT) -> DeltaEditResult:
    sources = prepare_inputs(per_edit)
    graph, nodes = edit_graph(sources)
    out = run(graph.nodes, list(dict.fromkeys(nodes.values())))
    success: dict[str, dict[str, float]] = defaultdict(dict)
    kept: dict[str, dict[str, float]] = defaultdict(dict)
    channels: dict[str, dict[str, float]] = defaultdict(dict)
    reconstructed: dict[str, list[bool]] = defaultdict(list)
    examples = []
    for edit in EDITS:
        hits: dict[str, list[float]] = defaultdict(list)
        keeps: dict[str, list[float]] = defaultdict(list)
        for index in range(per_edit):
            face, seed = source_portrait(edit, index)
            unedited = as_numpy_image(out[nodes[("unedited", edit, index)]][0])
            before = readings(unedited, face, seed)
            hits["unedited"].append(float(before[edit.attribute] == edit.target))
            for name, value in before.items():
                reconstructed[name].append(value == getattr(face, name))
            renders = {"unedited": unedited}
            for variant in VARIANTS:
                image = as_numpy_image(out[nodes[(variant, edit, index)]][0])
                after = readings(image, face, seed)
                hits[variant].append(float(after[edit.attribute] == edit.target))
                others = [name for name in after if name != edit.attribute]
                keeps[variant].append(float(np.mean([after[name] == before[name] for name in others])))
                renders[variant] = image
            if index == 0:
                examples.append({"edit": edit.name, "source": world.render_portrait(face, seed).image, **renders})
        success["unedited"][edit.name] = float(np.mean(hits["unedited"]))
        for variant in VARIANTS:
            success[variant][edit.name] = float(np.mean(hits[variant]))
            kept[variant][edit.name] = float(np.mean(keeps[variant]))
            shares = [float(out[nodes[("apply", variant, edit, index)]][1]) for index in range(per_edit)]
            channels[variant][edit.name] = float(np.mean(shares))
    return DeltaEditResult(
        success=dict(success),
        kept=dict(kept),
        reconstruction={name: float(np.mean(values)) for name, values in reconstructed.items()},
        channels=dict(channels),
        sources=per_edit,
        examples=examples,
    )


def edit_effect(result: DeltaEditResult, variant: str) -> float:
    """Mean over the edits of the variant's success minus the unedited render's (how often the edit brought the
    target value that the same seed's unedited render did not have)."""
    return float(
        np.mean([result.success[variant][name] - result.success["unedited"][name] for name in result.kept[variant]])
    )


def checks(result: DeltaEditResult) -> list[Check]:
    rows = []
    for name, accuracy in result.reconstruction.items():
        chance = 1 / len(probe_portrait.VALUES[name])
        rows.append(
            Check(
                "DeltaEdit unCLIP reconstruction",
                f"{name} of the source read back from its embedding's render",
                accuracy,
                f"chance {chance:.2f}; n={result.sources * len(EDITS)}",
                accuracy > chance,
            )
        )
    claim = "DeltaEdit disentanglement"
    already = result.success["unedited"]
    for edit in EDITS:
        mapper, baseline = result.success[MAPPER][edit.name], result.success[STRAIGHTFORWARD][edit.name]
        kept, baseline_kept = result.kept[MAPPER][edit.name], result.kept[STRAIGHTFORWARD][edit.name]
        reference = (
            f"straightforward {baseline:.2f}; unedited render already {already[edit.name]:.2f}; n={result.sources}; "
            f"needs ≥ {SUCCESS:g} and above the unedited"
        )
        holds = mapper >= SUCCESS and mapper > already[edit.name]
        rows.append(Check(claim, f"{edit.name}: edit success, mapper", mapper, reference, holds))
        reference = f"straightforward {baseline_kept:.2f}; needs ≥ {KEPT:g}"
        rows.append(Check(claim, f"{edit.name}: other attributes kept, mapper", kept, reference, kept >= KEPT))
    effect = {variant: edit_effect(result, variant) for variant in VARIANTS}
    rows.append(
        Check(
            claim,
            "mean edit effect (success minus the unedited render's), mapper against the straightforward baseline",
            effect[MAPPER],
            f"straightforward {effect[STRAIGHTFORWARD]:.2f}; needs > it",
            effect[MAPPER] > effect[STRAIGHTFORWARD],
        )
    )
    claim = "DeltaEdit relevance threshold"
    default = result.channels[MAPPER]
    paper = result.channels[PAPER]
    rows.append(
        Check(
            claim,
            f"fewest channels kept over the edits at the default (relative ρ = {DEFAULT_RELATIVE})",
            min(default.values()),
            "per edit " + ", ".join(f"{value:.2f}" for value in default.values()) + "; needs > 0",
            min(default.values()) > 0,
        )
    )
    rows.append(
        Check(
            claim,
            f"fewest channels kept over the edits at the paper's absolute τ = {PAPER_THRESHOLD}",
            min(paper.values()),
            "per edit " + ", ".join(f"{value:.2f}" for value in paper.values()) + f"; zeroes an edit when < {ZEROED:g}",
            min(paper.values()) < ZEROED,
        )
    )
    rows.append(
        Check(
            claim,
            "mean edit effect of the mapper at the default threshold",
            effect[MAPPER],
            f"at the paper's τ {effect[PAPER]:.2f}; needs > it",
            effect[MAPPER] > effect[PAPER],
        )
    )
    return rows
