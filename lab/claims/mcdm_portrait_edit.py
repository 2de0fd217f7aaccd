"""Claim: MCDM (Chen et al. 2024) learns a portrait edit from generated pairs and keeps identity and background,
guided by its own edit mask.

The lab's MCDM (``lab.train_mcdm``: the part-1 UNet fine-tuned by the pack's MCDM training on paired portraits)
edits portraits of identities never in its pairs (``lab.portrait_pairs.HELD_OUT_IDENTITIES``) through the pack's
nodes: MCDM Guider + SamplerCustomAdvanced from pure noise, as the release samples (strength 1), and MCDM Edit Mask.
Per held-out pair (x_A, p_b = x_B's caption, p_a = x_A's caption), one graph runs

- the three-scale guidance of the release (s1, s2, s3 = 3, 2, 4: image embedding, concat latent, text);
- plain text guidance (s1 = s2 = 1, s3 = 4: the image conditions unguided, ε_imgpc + s3 (ε_all − ε_imgpc));
- the three-scale guidance masked by MCDM's own edit mask (Eq. 3, the source prompt outside the mask);
- MCDM Edit Mask (DiffEdit on the MCDM: n = 10, strength 0.5, ratio 3, binary at 0.5);
- the part-1 text-to-image model generating p_b from the same noise (what the edit would be without MCDM).

Beside it, DiffEdit's mask computed with the part-1 text-to-image model (the paper's comparison, its defaults: n = 10
noises at t = 481, classifier-free guidance 7.5, |ε(p_b) − ε(p_a)| clamped at 3× its mean, binary at 0.5; in
process with the pack's ``core.mcdm.diffedit_mask``: the pack has no DiffEdit node for a text-to-image model).

Measured with the portrait probe (``lab.probe_portrait``, read in the source's layout): the edited attribute reads
as the target value; the identity (face shape, skin) reads as the source's; the mean |Δpixel| against the source's
cell-VAE round trip outside the true changed region (the cells the pair does not change). Masks: IoU with the true
region at cell resolution (the masks are latent-sized), against a uniform map (IoU = the region's area share).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lab import graphs, metrics, portrait_pairs, probe_portrait, world
from lab.checks import Check
from lab.loader_node import MCDM_NODE_ID
from lab.runtime import run, save_input_image

STEPS = 20
SAMPLER = "uni_pc"
THREE_SCALE = "three-scale"
TEXT_ONLY = "text guidance only"
MASKED = "three-scale + own mask"
TEXT_TO_IMAGE = "text-to-image"
GUIDANCE: dict[str, tuple[float, float, float]] = {THREE_SCALE: (3.0, 2.0, 4.0), TEXT_ONLY: (1.0, 1.0, 4.0)}
ROUTES = (THREE_SCALE, TEXT_ONLY, MASKED, TEXT_TO_IMAGE)
MASK_SAMPLES = 10
MASK_STRENGTH = 0.5
MASK_RATIO = 3.0
DIFFEDIT_GUIDANCE = 7.5
PER_EDIT = 2
SEED = 8000


@dataclass
class MCDMResult:
    """Per route, the share of edits with the attribute applied and with the identity kept, and the mean change
    outside the true region; per identity attribute (face shape, skin), the share the three-scale edits keep; mask
    IoUs; the number of edits; examples for the report."""

    applied: dict[str, float]
    identity: dict[str, float]
    identity_parts: dict[str, float]
    outside: dict[str, float]
    masks: dict[str, float]
    edits: int
    examples: list[dict[str, Any]] = field(default_factory=list)


def edit_graph(
    pair: portrait_pairs.PortraitPair, seed: int, image_name: str, steps: int = STEPS
) -> tuple[graphs.Graph, dict[str, str]]:
    """The MCDM graph of one held-out pair (``steps`` sampling steps, the text-to-image model's 1.5 times as many
    as the lab samples it); returns it and the ids of the nodes read: ``source`` (LoadImage), one VAEDecode per route
    and ``mask`` (MCDM Edit Mask)."""
    graph = graphs.Graph()
    loader = graph.add(MCDM_NODE_ID)
    mcdm, model, clip, vae = ([loader, index] for index in range(4))
    source = graph.add("LoadImage", image=image_name)
    positive = graphs.encode(graph, clip, pair.prompt)
    negative = graphs.encode(graph, clip, "")
    source_prompt = graphs.encode(graph, clip, pair.source_prompt)
    common = {"mcdm": mcdm, "vae": vae, "source_image": [source, 0], "positive": positive, "negative": negative}
    s1, s2, s3 = GUIDANCE[THREE_SCALE]
    mask = graph.add(
        "PreciseEdit_MCDMEditMask",
        **common,
        source_prompt=source_prompt,
        image_scale=s1,
        concat_scale=s2,
        text_scale=s3,
        samples=MASK_SAMPLES,
        strength=MASK_STRENGTH,
        ratio=MASK_RATIO,
        output="binary",
        threshold=0.5,
        seed=seed,
    )
    nodes = {"source": source, "mask": mask}
    latent = graph.add("EmptyLatentImage", width=world.SIZE, height=world.SIZE, batch_size=1)
    noise = graph.add("RandomNoise", noise_seed=seed)
    sampler = graph.add("KSamplerSelect", sampler_name=SAMPLER)
    sigmas = graph.add("BasicScheduler", model=model, scheduler="normal", steps=steps, denoise=1.0)
    routes = {name: {} for name in GUIDANCE} | {MASKED: {"source_prompt": source_prompt, "mask": [mask, 0]}}
    for name, extra in routes.items():
        s1, s2, s3 = GUIDANCE.get(name, GUIDANCE[THREE_SCALE])
        guider = graph.add("PreciseEdit_MCDMGuider", **common, image_scale=s1, concat_scale=s2, text_scale=s3, **extra)
        sampled = graph.add(
            "SamplerCustomAdvanced",
            noise=[noise, 0],
            guider=[guider, 0],
            sampler=[sampler, 0],
            sigmas=[sigmas, 0],
            latent_image=[latent, 0],
        )
        nodes[name] = graphs.decode(graph, vae, [sampled, 0])
    base = graphs.load(graph)
    positive, negative = graphs.encode(graph, base.clip, pair.prompt), graphs.encode(graph, base.clip, "")
    regenerated = graphs.sample(graph, base.model, positive, negative, seed, steps=steps * 3 // 2)
    nodes[TEXT_TO_IMAGE] = graphs.decode(graph, base.vae, regenerated)
    return graph, nodes


def input_name(seed: int) -> str:
    return f"lab_mcdm_{seed}.png"


def diffedit_mask_part1(pair: portrait_pairs.PortraitPair, network: Any, encode: Any, seed: int) -> np.ndarray:
    """DiffEdit's binary mask [H, W] of the pair's source for p_b against p_a, from the part-1 text-to-image UNet."""
    from lab.models.cell_latent import model_latent
    from lab.models.unet import sd1_log_sigmas
    from precise_edit.core.mcdm.diffedit_mask import diffedit_mask, difference_map, encode_timestep

    timestep = encode_timestep(50, MASK_STRENGTH)
    alpha = 1.0 / (1.0 + sd1_log_sigmas()[timestep].exp() ** 2)
    source = model_latent(torch.from_numpy(pair.source[None]))
    noise = torch.randn((MASK_SAMPLES, *source.shape[1:]), generator=torch.Generator().manual_seed(seed))
    noisy = alpha.sqrt() * source + (1 - alpha).sqrt() * noise
    contexts = encode(["", pair.prompt, pair.source_prompt])
    with torch.no_grad():
        batch = noisy.repeat(3, 1, 1, 1)
        context = contexts.repeat_interleave(MASK_SAMPLES, dim=0)
        eps = network(batch, torch.full((len(batch),), float(timestep)), context).float()
    uncond, target, source_eps = eps.split(MASK_SAMPLES)
    guided = [uncond + DIFFEDIT_GUIDANCE * (branch - uncond) for branch in (target, source_eps)]
    difference = difference_map(guided[0][:, None], guided[1][:, None])
    mask = diffedit_mask(difference, MASK_RATIO, binary=True)[0].numpy() > 0.5
    return metrics.to_pixels(mask)


def _image(out: dict, node: str) -> np.ndarray:
    return metrics.as_numpy_image(out[node][0])


def measure(per_edit: int = PER_EDIT, seed: int = SEED) -> MCDMResult:
    from lab import train
    from lab.models import text_encoder, unet

    clip = text_encoder.build_clip(train.text_encoder_state())
    network = unet.build_model(train.unet_state(clip)).diffusion_model.eval()
    encode = train.CaptionEncoder(clip)
    applied: dict[str, list[float]] = defaultdict(list)
    identity: dict[str, list[float]] = defaultdict(list)
    parts: dict[str, list[float]] = defaultdict(list)
    outside: dict[str, list[float]] = defaultdict(list)
    masks: dict[str, list[float]] = defaultdict(list)
    examples: list[dict[str, Any]] = []
    pairs = portrait_pairs.held_out_pairs(per_edit, seed)
    for index, pair in enumerate(pairs):
        name = save_input_image(pair.source, input_name(pair.seed))
        graph, nodes = edit_graph(pair, pair.seed, name)
        out = run(graph.nodes, list(dict.fromkeys(nodes.values())))
        source = _image(out, nodes["source"])
        target_value = getattr(pair.edited, pair.attribute)
        for route in ROUTES:
            edit = _image(out, nodes[route])
            read = probe_portrait.read_attribute(edit, pair.edited, pair.seed, pair.attribute)
            applied[route].append(float(read == target_value))
            identity[route].append(float(probe_portrait.identity_kept(edit, pair.face, pair.seed, pair.edited)))
            outside[route].append(probe_portrait.change_outside(edit, source, pair.region))
        three_scale = _image(out, nodes[THREE_SCALE])
        for name in probe_portrait.IDENTITY:
            read = probe_portrait.read_attribute(three_scale, pair.edited, pair.seed, name)
            parts[name].append(float(read == getattr(pair.face, name)))
        truth = metrics.to_pixels(probe_portrait.cell_mask(pair.region))
        mcdm_mask = out[nodes["mask"]][0][0].cpu().numpy() > 0.5
        diffedit = diffedit_mask_part1(pair, network, encode, pair.seed)
        masks["MCDM Edit Mask"].append(metrics.iou(mcdm_mask, truth))
        masks["DiffEdit (part-1 model)"].append(metrics.iou(diffedit, truth))
        masks["uniform"].append(float(truth.mean()))
        if index < len(portrait_pairs.EDITS):
            example = {"edit": f"{pair.attribute} → {target_value}", "source": source, "target": pair.target}
            example |= {route: _image(out, nodes[route]) for route in ROUTES}
            example |= {"true region": truth, "MCDM mask": mcdm_mask, "DiffEdit mask": diffedit}
            examples.append(example)
    return MCDMResult(
        {route: float(np.mean(values)) for route, values in applied.items()},
        {route: float(np.mean(values)) for route, values in identity.items()},
        {name: float(np.mean(values)) for name, values in parts.items()},
        {route: float(np.mean(values)) for route, values in outside.items()},
        {name: float(np.mean(values)) for name, values in masks.items()},
        len(pairs),
        examples,
    )


def checks(result: MCDMResult) -> list[Check]:
    """Held-out edits: the attribute applied in most edits, the identity kept in nearly all (and, apart, the skin
    tone), and the change outside the true region under half the text-to-image model's. Masks: MCDM's own overlaps
    the true region better than DiffEdit's on the part-1 model and at least twice as well as a uniform map.
    Guidance: the three-scale guidance keeps the identity at least as often as plain text guidance and changes less
    outside the region."""
    n = f"n={result.edits}"
    applied, identity, outside, masks = result.applied, result.identity, result.outside, result.masks
    others = ", ".join(f"{route} {applied[route]:.2f}" for route in ROUTES[1:])
    return [
        Check(
            "MCDM edit (held-out identities)",
            f"share of edits with the attribute applied ({n})",
            applied[THREE_SCALE],
            f"{others}; needs ≥ 0.5",
            applied[THREE_SCALE] >= 0.5,
        ),
        Check(
            "MCDM edit (held-out identities)",
            f"share of edits keeping the identity ({n})",
            identity[THREE_SCALE],
            f"face shape kept {result.identity_parts['face_shape']:.2f}, skin {result.identity_parts['skin']:.2f}; "
            f"text-to-image from the same noise {identity[TEXT_TO_IMAGE]:.2f}; needs ≥ 0.9",
            identity[THREE_SCALE] >= 0.9,
        ),
        Check(
            "MCDM edit (held-out identities)",
            f"share of edits keeping the skin tone ({n})",
            result.identity_parts["skin"],
            "needs ≥ 0.9",
            result.identity_parts["skin"] >= 0.9,
        ),
        Check(
            "MCDM edit (held-out identities)",
            f"mean change outside the true region ({n})",
            outside[THREE_SCALE],
            f"text-to-image {outside[TEXT_TO_IMAGE]:.4f}, with its own mask {outside[MASKED]:.4f}; needs < half",
            outside[THREE_SCALE] < 0.5 * outside[TEXT_TO_IMAGE],
        ),
        Check(
            "MCDM edit mask",
            f"IoU of MCDM Edit Mask with the true region ({n})",
            masks["MCDM Edit Mask"],
            f"DiffEdit on the part-1 model {masks['DiffEdit (part-1 model)']:.3f}, uniform {masks['uniform']:.3f}; "
            "needs > DiffEdit and ≥ 2× uniform",
            masks["MCDM Edit Mask"] > masks["DiffEdit (part-1 model)"]
            and masks["MCDM Edit Mask"] >= 2 * masks["uniform"],
        ),
        Check(
            "MCDM three-scale guidance",
            f"share of edits keeping the identity, three-scale ({n})",
            identity[THREE_SCALE],
            f"plain text guidance {identity[TEXT_ONLY]:.2f}; needs ≥ it",
            identity[THREE_SCALE] >= identity[TEXT_ONLY],
        ),
        Check(
            "MCDM three-scale guidance",
            f"mean change outside the true region, three-scale ({n})",
            outside[THREE_SCALE],
            f"plain text guidance {outside[TEXT_ONLY]:.4f}; needs ≤ it",
            outside[THREE_SCALE] <= outside[TEXT_ONLY],
        ),
    ]
