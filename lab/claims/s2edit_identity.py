"""Claim: S2Edit learns an identity token [I] from one portrait and edits an attribute while keeping the identity
(face shape and skin tone) and the rest of the image; its two controls (the orthogonality loss and the spatial
attention mask) are what keep it, as the paper's ablation shows; and [I] composes with an attribute token [A]
learned from a second portrait (Liu et al., S2Edit).

Everything runs through the pack's nodes on the lab's trained models: Identity Token Trainer (with Orthogonality
Loss and Spatial Control, the face mask from the world's ground truth), Identity Prompt, Null-Text Inversion of
the portrait under its [I] prompt, and Prompt-to-Prompt Edit with the identity, for each edit of a portrait
("with glasses", "with a hat", another shirt colour). The prompt names what the token must not hold, as in the
paper's "a photo of a [I] lady with glasses": the caption with the identity words (face shape and skin tone)
replaced by [I].

Measures (``lab.probe_portrait``, read from the decoded pixels): identity kept (face shape and skin tone read back
as the source's), attribute success (the edited attribute read back as asked) and the change outside the edited
attribute's ground-truth mask (mean |Δpixel| against the source's cell-VAE round trip). Four variants, as in the
paper's ablation table: the full method, without the orthogonality loss, without spatial control, and plain
fine-tuning (neither).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from lab import graphs, probe_portrait, world
from lab.checks import Check
from lab.runtime import run, save_input_image

IDENTITY = "[I]"
ATTRIBUTE = "[A]"
FULL = "full method"
NO_ORTHOGONALITY = "without orthogonality loss"
NO_SPATIAL = "without spatial control"
PLAIN = "plain fine-tuning"
VARIANTS: dict[str, tuple[bool, bool]] = {
    FULL: (True, True),
    NO_ORTHOGONALITY: (False, True),
    NO_SPATIAL: (True, False),
    PLAIN: (False, False),
}
"""Each variant's (orthogonality loss, spatial control)."""

# Few steps at high learning rates: the images are 128 px (a 16×16 latent), the model small, and the whole claim
# has to fit a few minutes on two cores.
TRAINING: dict[str, object] = {
    "steps": 40,
    "token_learning_rate": 1e-3,
    "unet_learning_rate": 5e-4,
    "text_encoder_learning_rate": 1e-4,
    "rank": 4,
    "train_text_encoder": True,
    "learning_rate_schedule": "linear",
}
ORTHOGONALITY_WEIGHT = 0.1
STEPS = 20
INNER_STEPS = 5
SEEDS = (1, 2)
"""Portraits (the first without glasses and hat from each seed, see ``portrait_with_edits``)."""
CROSS_REPLACE = 0.8
SELF_REPLACE = 0.5
SUBJECT = "face"


def identity_prompt(face: world.Face, placeholder: str = IDENTITY) -> str:
    """The portrait's caption with its identity words ("round pale") replaced by the placeholder."""
    article = "an" if face.face_shape == "oval" else "a"
    return face.caption.replace(f"{article} {face.face_shape} {face.skin} face", f"a {placeholder} face", 1)


def face_mask(sample: world.Sample) -> np.ndarray:
    """The face's visible pixels as the world drew them: skin, eyes, mouth and glasses (the hair excluded)."""
    parts = ("face", "eyes", "mouth", "glasses")
    return np.any([sample.masks[part].astype(bool) for part in parts if part in sample.masks], axis=0)


def edits_of(face: world.Face) -> list[tuple[str, world.Face]]:
    """The edits measured on a portrait: add glasses, add a hat (when it has none), toggle the smile, change the
    shirt colour and the hair colour."""
    edits = []
    if not face.glasses:
        edits.append(("glasses", replace(face, glasses=True)))
    if not face.hat:
        edits.append(("hat", replace(face, hat=True)))
    edits.append(("smile", replace(face, smile=not face.smile)))
    outfit = world.OUTFIT_COLOURS[(world.OUTFIT_COLOURS.index(face.outfit) + 2) % len(world.OUTFIT_COLOURS)]
    edits.append(("outfit", replace(face, outfit=outfit)))
    hairs = list(world.HAIR_COLOURS)
    edits.append(("hair", replace(face, hair=hairs[(hairs.index(face.hair) + 1) % len(hairs)])))
    return edits


def mask_image(mask: np.ndarray) -> np.ndarray:
    return np.repeat(mask.astype(np.float32)[..., None], 3, axis=-1)


def identity_graph(
    *,
    prompt: str,
    image_name: str,
    mask_name: str,
    targets: dict[str, str],
    orthogonality: bool,
    spatial: bool,
    seed: int,
    reference: dict[str, str] | None = None,
) -> tuple[graphs.Graph, dict[str, str]]:
    """Train [I] on the image (and [A] on ``reference``: image, mask, prompt, subject), invert the image under
    ``prompt`` with the identity, and edit it to each of ``targets`` (name → target prompt, placeholders allowed).
    Returns the graph and each edit's decoder id (each decodes the batch [source reconstruction, edit])."""
    graph = graphs.Graph()
    models = graphs.load(graph)
    image = [graph.add("LoadImage", image=image_name), 0]
    mask = [graph.add("LoadImageMask", image=mask_name, channel="red"), 0]
    controls: dict[str, list] = {}
    if orthogonality:
        node = graph.add(
            "PreciseEdit_OrthogonalityLoss",
            clip=models.clip,
            source_prompt="",
            weight=ORTHOGONALITY_WEIGHT,
            vectors="eos_output_i_output",
        )
        controls["semantic_control"] = [node, 0]
    if spatial:
        controls["spatial_control"] = [graph.add("PreciseEdit_SpatialControl", threshold=0.3, mask=mask), 0]
    extra: dict[str, object] = {"reference_prompt": "", "reference_subject": ""}
    if reference is not None:
        extra = {
            "reference_image": [graph.add("LoadImage", image=reference["image"]), 0],
            "reference_mask": [graph.add("LoadImageMask", image=reference["mask"], channel="red"), 0],
            "reference_prompt": reference["prompt"],
            "reference_subject": reference["subject"],
        }
    trainer = graph.add(
        "PreciseEdit_IdentityTokenTrainer",
        model=models.model,
        clip=models.clip,
        vae=models.vae,
        image=image,
        prompt=prompt,
        subject=SUBJECT,
        seed=seed,
        name="lab_s2edit",
        **TRAINING,
        **controls,
        **extra,
    )
    trained = graphs.LabModels([trainer, 0], [trainer, 1], models.vae)
    identity = [trainer, 2]
    prompt_text = [graph.add("PreciseEdit_IdentityPrompt", identity=identity, text=prompt), 0]
    positive = graphs.encode(graph, trained.clip, prompt_text)
    negative = graphs.encode(graph, trained.clip, "")
    latent = [graph.add("VAEEncode", pixels=image, vae=models.vae), 0]
    inversion = graphs.invert(
        graph, trained, positive, negative, latent, prompt, steps=STEPS, inner_steps=INNER_STEPS, identity=identity
    )
    decoders = {
        name: graphs.decode(
            graph,
            models.vae,
            graphs.edit(
                graph, trained, inversion, prompt, target, "auto", CROSS_REPLACE, SELF_REPLACE, identity=identity
            ),
        )
        for name, target in targets.items()
    }
    return graph, decoders


@dataclass
class EditScore:
    """One edit of one portrait by one variant."""

    identity_kept: bool
    attribute_success: bool
    change_outside: float


@dataclass
class S2EditResult:
    scores: dict[str, list[EditScore]]
    """Per variant, every edit of every portrait."""
    compositional: list[EditScore]
    portraits: int
    examples: dict[str, np.ndarray] = field(default_factory=dict)

    def column(self, variant: str, name: str) -> float:
        return float(np.mean([getattr(score, name) for score in self.scores[variant]]))


def portrait_with_edits(seed: int) -> tuple[world.Sample, int]:
    """A portrait without glasses and hat (so both can be added): the first fitting one of ``seed``, ``seed`` +
    1000, ...; and the seed it was rendered with (the probe renders its templates with it)."""
    while True:
        sample = world.portrait(seed)
        face = sample.labels["face"]
        if not face.glasses and not face.hat:
            return sample, seed
        seed += 1000


def score_edit(source: world.Sample, seed: int, attribute: str, edited: world.Face, image: np.ndarray) -> EditScore:
    face = source.labels["face"]
    return EditScore(
        probe_portrait.identity_kept(image, face, seed, edited),
        probe_portrait.read_attribute(image, edited, seed, attribute) == getattr(edited, attribute),
        probe_portrait.change_outside(
            image, source.image, probe_portrait.attribute_mask(face, edited, seed, attribute)
        ),
    )


def _decoded(out: dict, node: str) -> np.ndarray:
    return out[node][0].cpu().float().numpy()


def portrait_files(sample: world.Sample, seed: int) -> dict[str, np.ndarray]:
    """The images a portrait's graph loads, by file name: the portrait and its face mask."""
    return {f"lab_s2edit_{seed}.png": sample.image, f"lab_s2edit_{seed}_face.png": mask_image(face_mask(sample))}


def ablation_graph(sample: world.Sample, seed: int, variant: str) -> tuple[graphs.Graph, dict[str, str]]:
    """One variant's graph for a portrait (its files as ``portrait_files`` names them): every edit of it."""
    face = sample.labels["face"]
    image_name, mask_name = portrait_files(sample, seed)
    orthogonality, spatial = VARIANTS[variant]
    return identity_graph(
        prompt=identity_prompt(face),
        image_name=image_name,
        mask_name=mask_name,
        targets={attribute: identity_prompt(edited) for attribute, edited in edits_of(face)},
        orthogonality=orthogonality,
        spatial=spatial,
        seed=seed,
    )


def measure_ablation(seeds: list[int], scores: dict[str, list[EditScore]], examples: dict[str, np.ndarray]) -> None:
    for first_seed in seeds:
        sample, seed = portrait_with_edits(first_seed)
        for name, image in portrait_files(sample, seed).items():
            save_input_image(image, name)
        edits = edits_of(sample.labels["face"])
        for variant in VARIANTS:
            graph, decoders = ablation_graph(sample, seed, variant)
            out = run(graph.nodes, list(decoders.values()))
            for attribute, edited in edits:
                images = _decoded(out, decoders[attribute])
                scores[variant].append(score_edit(sample, seed, attribute, edited, images[1]))
                if first_seed == seeds[0] and variant == FULL:
                    if not examples:
                        examples["source"] = sample.image
                        examples["reconstruction"] = images[0]
                    examples[f"full method: {attribute}"] = images[1]


def reference_portrait(source: world.Face, seed: int) -> tuple[world.Sample, str]:
    """A second portrait with a hat and another face shape and skin tone than ``source``, moved two cells to the
    right (its layout differs from the source's); and its [A] prompt."""
    shapes = [shape for shape in world.FACE_SHAPES if shape != source.face_shape]
    skins = [skin for skin in world.SKIN_TONES if skin != source.skin]
    outfits = [outfit for outfit in world.OUTFIT_COLOURS if outfit != source.outfit]
    face = world.Face(shapes[seed % 2], skins[seed % 2], "white", outfits[seed % 4], False, False, True)
    sample = world.render_portrait(face, seed)
    shift = 2 * world.CELL
    image = np.roll(sample.image, shift, axis=1)
    masks = {name: np.roll(mask, shift, axis=1) for name, mask in sample.masks.items()}
    prompt = face.caption.replace("with a hat", f"with a {ATTRIBUTE} hat")
    return world.Sample(image, face.caption, masks, sample.labels, "portrait"), prompt


def measure_compositional(seeds: list[int], scores: list[EditScore], examples: dict[str, np.ndarray]) -> None:
    """[I] from a portrait, [A] from a second portrait's hat: '[I] ... with a [A] hat', with the full method."""
    for first_seed in seeds:
        sample, seed = portrait_with_edits(first_seed)
        face = sample.labels["face"]
        image_name, mask_name = (save_input_image(image, name) for name, image in portrait_files(sample, seed).items())
        reference, reference_prompt = reference_portrait(face, seed)
        reference_name = save_input_image(reference.image, f"lab_s2edit_reference_{seed}.png")
        reference_mask = save_input_image(mask_image(reference.masks["hat"]), f"lab_s2edit_reference_{seed}_hat.png")
        edited = replace(face, hat=True)
        target = identity_prompt(edited).replace("with a hat", f"with a {ATTRIBUTE} hat")
        graph, decoders = identity_graph(
            prompt=identity_prompt(face),
            image_name=image_name,
            mask_name=mask_name,
            targets={"hat": target},
            orthogonality=True,
            spatial=True,
            seed=seed,
            reference={"image": reference_name, "mask": reference_mask, "prompt": reference_prompt, "subject": "hat"},
        )
        out = run(graph.nodes, list(decoders.values()))
        image = _decoded(out, decoders["hat"])[1]
        scores.append(score_edit(sample, seed, "hat", edited, image))
        if first_seed == seeds[0]:
            examples["reference [A]"] = reference.image
            examples["[I] with [A] hat"] = image


def measure(seeds: tuple[int, ...] = SEEDS, compositional_seeds: tuple[int, ...] = SEEDS[:1]) -> S2EditResult:
    scores: dict[str, list[EditScore]] = {variant: [] for variant in VARIANTS}
    compositional: list[EditScore] = []
    examples: dict[str, np.ndarray] = {}
    measure_ablation(list(seeds), scores, examples)
    measure_compositional(list(compositional_seeds), compositional, examples)
    return S2EditResult(scores, compositional, len(seeds), examples)


LOCALITY_MARGIN = 0.9
"""Spatial control counts as keeping the edit local when the change outside falls below 0.9 × the variant's
without it (the change outside includes the reconstruction's own error, the same for every variant)."""


def _row(result: S2EditResult, measure: str) -> str:
    return ", ".join(f"{variant} {result.column(variant, measure):.3f}" for variant in VARIANTS)


def checks(result: S2EditResult) -> list[Check]:
    """The full method keeps the identity and applies the edit; the paper's ablation: the orthogonality loss keeps
    the attribute editable (full method against the variant without it and against plain fine-tuning) and spatial
    control keeps the change inside the edited attribute (likewise); the compositional edit applies [A] and keeps
    [I]. Each row's reference lists the measure for all four variants (the paper's table, one column per row)."""
    n = f"n={len(result.scores[FULL])} edits of {result.portraits} portraits"
    success = {variant: result.column(variant, "attribute_success") for variant in VARIANTS}
    outside = {variant: result.column(variant, "change_outside") for variant in VARIANTS}
    composed = result.compositional
    composed_success = float(np.mean([score.attribute_success for score in composed]))
    composed_identity = float(np.mean([score.identity_kept for score in composed]))
    rows = [
        Check(
            "S2Edit identity edit",
            f"identity kept (face shape and skin tone read back), full method ({n})",
            result.column(FULL, "identity_kept"),
            f"{_row(result, 'identity_kept')}; needs ≥ 0.5",
            result.column(FULL, "identity_kept") >= 0.5,
        ),
        Check(
            "S2Edit identity edit",
            "attribute success (the edited attribute read back), full method",
            success[FULL],
            f"{_row(result, 'attribute_success')}; needs ≥ 0.5",
            success[FULL] >= 0.5,
        ),
    ]
    for other in (NO_ORTHOGONALITY, PLAIN):
        rows.append(
            Check(
                "S2Edit ablation",
                f"attribute success, full method against {other}",
                success[FULL],
                f"{other} {success[other]:.3f}; needs more",
                success[FULL] > success[other],
            )
        )
    for other in (NO_SPATIAL, PLAIN):
        rows.append(
            Check(
                "S2Edit ablation",
                f"mean |Δpixel| outside the edited attribute's mask, full method against {other}",
                outside[FULL],
                f"{_row(result, 'change_outside')}; needs < {LOCALITY_MARGIN} × {other}'s",
                outside[FULL] < LOCALITY_MARGIN * outside[other],
            )
        )
    rows.append(
        Check(
            "S2Edit compositional",
            f"[I] with [A] hat learned from a second portrait: attribute success (n={len(composed)})",
            composed_success,
            f"identity kept {composed_identity:.2f}; both need ≥ 0.5",
            composed_success >= 0.5 and composed_identity >= 0.5,
        )
    )
    return rows
