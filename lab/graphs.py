"""API-format prompts for the lab: the loader, text encoding and sampling with stock nodes, the pack's nodes by id."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lab.loader_node import NODE_ID as LOADER
from lab.world import SIZE

STEPS = 30
GUIDANCE = 4.0
SAMPLER = "ddim"
SCHEDULER = "ddim_uniform"


@dataclass
class Graph:
    """A growing API-format prompt: ``add`` returns the new node's id; ``[id, index]`` links an output."""

    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, class_type: str, **inputs: Any) -> str:
        node_id = str(len(self.nodes) + 1)
        self.nodes[node_id] = {"class_type": class_type, "inputs": inputs}
        return node_id


@dataclass(frozen=True)
class LabModels:
    """Links to the loader's outputs in a graph."""

    model: list
    clip: list
    vae: list


def load(graph: Graph) -> LabModels:
    node = graph.add(LOADER)
    return LabModels([node, 0], [node, 1], [node, 2])


def encode(graph: Graph, clip: list, text: str) -> list:
    return [graph.add("CLIPTextEncode", clip=clip, text=text), 0]


def sample(
    graph: Graph,
    model: list,
    positive: list,
    negative: list,
    seed: int,
    steps: int = STEPS,
    guidance: float = GUIDANCE,
    batch: int = 1,
) -> list:
    """KSampler (DDIM, CFG) from an empty 128×128 latent; returns the LATENT link."""
    latent = graph.add("EmptyLatentImage", width=SIZE, height=SIZE, batch_size=batch)
    sampler = graph.add(
        "KSampler",
        model=model,
        positive=positive,
        negative=negative,
        latent_image=[latent, 0],
        seed=seed,
        steps=steps,
        cfg=guidance,
        sampler_name=SAMPLER,
        scheduler=SCHEDULER,
        denoise=1.0,
    )
    return [sampler, 0]


def decode(graph: Graph, vae: list, latent: list) -> str:
    return graph.add("VAEDecode", samples=latent, vae=vae)


def encode_image(graph: Graph, vae: list, image_name: str) -> list:
    """LoadImage (a file of ComfyUI's input folder, see ``lab.runtime.save_input_image``) → VAEEncode; LATENT link."""
    image = graph.add("LoadImage", image=image_name)
    return [graph.add("VAEEncode", pixels=[image, 0], vae=vae), 0]


def denoise(
    graph: Graph, model: list, positive: list, negative: list, latent: list, seed: int, strength: float
) -> list:
    """KSampler from a given latent at ``strength`` (img2img); LATENT link."""
    sampler = graph.add(
        "KSampler",
        model=model,
        positive=positive,
        negative=negative,
        latent_image=latent,
        seed=seed,
        steps=STEPS,
        cfg=GUIDANCE,
        sampler_name=SAMPLER,
        scheduler=SCHEDULER,
        denoise=strength,
    )
    return [sampler, 0]


NULL_TEXT = "null_text"
PLAIN_DDIM = "plain_ddim"


def invert(
    graph: Graph,
    models: LabModels,
    positive: list,
    negative: list,
    latent: list,
    caption: str,
    mode: str = NULL_TEXT,
    *,
    steps: int = STEPS,
    inner_steps: int = 10,
    identity: list | None = None,
) -> list:
    """Null-Text Inversion (the pack's node) at the lab's guidance; INVERSION link. ``identity``: an S2Edit
    IDENTITY link whose token the inversion masks (``caption`` then holds its placeholder)."""
    extra = {} if identity is None else {"identity": identity}
    node = graph.add(
        "PreciseEdit_NullTextInversion",
        model=models.model,
        positive=positive,
        negative=negative,
        latent=latent,
        steps=steps,
        guidance=GUIDANCE,
        inner_steps=inner_steps,
        epsilon=1e-5,
        mode=mode,
        clip=models.clip,
        source_text=caption,
        **extra,
    )
    return [node, 0]


def reconstruct(graph: Graph, models: LabModels, inversion: list, positive: list) -> list:
    return [
        graph.add("PreciseEdit_InversionReconstruct", model=models.model, inversion=inversion, positive=positive),
        0,
    ]


def edit(
    graph: Graph,
    models: LabModels,
    inversion: list,
    source: str,
    target: str,
    controller: str = "auto",
    cross_replace: float = 0.8,
    self_replace: float = 0.5,
    word_weights: str = "",
    *,
    identity: list | None = None,
) -> list:
    """Prompt-to-Prompt Edit (the pack's node): LATENT link of the batch [source reconstruction, edit]; with an
    S2Edit ``identity`` link, its placeholders in the prompts."""
    extra = {} if identity is None else {"identity": identity}
    node = graph.add(
        "PreciseEdit_PromptToPromptEdit",
        model=models.model,
        clip=models.clip,
        inversion=inversion,
        source_text=source,
        target_text=target,
        controller=controller,
        cross_replace=cross_replace,
        word_cross_replace="",
        self_replace=self_replace,
        word_weights=word_weights,
        blend_words="",
        blend_threshold=0.3,
        output="source_and_edit",
        **extra,
    )
    return [node, 0]
