"""Claim: ZONE edits in turns: three instructions in a row, each turn's composite the next turn's source, keep every
pixel outside each turn's final mask.

A toy scene gets three instructions in a chain (``instruction_world.chain``: change one object, add one, remove
another). One graph holds the three turns, as the zone_multi_turn example workflow: each turn is the claim graph of
``zone_local_edit`` (the instruction UNet fused with MagicBrush's stand-in at ZONE's β, 0.2 for the removal and 0.01
otherwise) on the previous turn's composite, composited from the Difference Locator's M_b (the attention's M_b is the
whole image at this scale, see the ZONE locator row), with the segments of the image ZONE segments for that turn.

Measured: per turn, the pixels outside its final mask that differ from its source (ZONE: none) and whether its edit
is there; over the chain, the mean change of the last composite from the first source outside the union of the three
true regions, against the plain instruction model chained on its own outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lab import graphs, instruction_world, metrics
from lab.checks import Check
from lab.claims import zone_local_edit
from lab.runtime import run

CHAINS = 3
SEED = 7000
BETA = {"remove": 0.2}
DEFAULT_BETA = 0.01
ROUTE = zone_local_edit.DIFFERENCE


@dataclass
class MultiTurnResult:
    """Per turn (``instruction_world.CHAIN`` order): pixels changed outside its final mask (summed over chains) and
    the share of chains with its edit there; the chains' mean change outside the union of their true regions,
    composited and plain; the number of chains and one chain's images."""

    changed_outside_final_mask: list[int]
    edit_there: list[float]
    outside_union: float
    plain_outside_union: float
    chains: int
    examples: list[tuple[str, np.ndarray]] = field(default_factory=list)


def write_inputs(turns: list[instruction_world.InstructionSample], folder: Path, stem: str) -> tuple[str, list[str]]:
    """Write the first turn's source and each turn's segments into ``folder``; their file names."""
    image_name, first = zone_local_edit.write_inputs(turns[0], folder, f"{stem}_turn0")
    later = [zone_local_edit.write_segments(turn, folder, f"{stem}_turn{i}") for i, turn in enumerate(turns) if i]
    return image_name, [first, *later]


def chain_graph(
    turns: list[instruction_world.InstructionSample],
    seed: int,
    image_name: str,
    segments: list[str],
    composite: bool = True,
) -> tuple[graphs.Graph, list[list], list[dict[str, str]]]:
    """The turns in one graph, each on the previous turn's composite (``composite``) or on the instruction model's
    own output (the plain chain). Returns it, each turn's source link and each turn's node ids."""
    graph = graphs.Graph()
    models = zone_local_edit.load(graph, magicbrush=True)
    source = [graph.add("LoadImage", image=image_name), 0]
    sources, nodes = [], []
    for index, (turn, segments_name) in enumerate(zip(turns, segments, strict=True)):
        beta = BETA.get(turn.action, DEFAULT_BETA)
        turn_nodes = zone_local_edit.zone_turn(
            graph, models, turn.instruction, seed + index, source, segments_name, beta
        )
        sources.append(source)
        nodes.append(turn_nodes)
        source = [turn_nodes[f"{ROUTE} composite"], 1] if composite else [turn_nodes["edited"], 0]
    return graph, sources, nodes


def measure(chains: int = CHAINS, seed: int = SEED) -> MultiTurnResult:
    import folder_paths

    folder = Path(folder_paths.get_input_directory())
    changed = [0] * len(instruction_world.CHAIN)
    there: list[list[bool]] = [[] for _ in instruction_world.CHAIN]
    outside, plain_outside = [], []
    examples: list[tuple[str, np.ndarray]] = []
    for index in range(chains):
        turns = instruction_world.chain(seed + index)
        image_name, segments = write_inputs(turns, folder, f"lab_zone_chain_{seed + index}")
        union = np.any([turn.region for turn in turns], axis=0)
        graph, sources, nodes = chain_graph(turns, seed + index, image_name, segments)
        composites = [turn_nodes[f"{ROUTE} composite"] for turn_nodes in nodes]
        out = run(graph.nodes, list(dict.fromkeys([source[0] for source in sources] + composites)))
        first = metrics.as_numpy_image(out[sources[0][0]][sources[0][1]])
        for turn_index, (turn, source, composite) in enumerate(zip(turns, sources, composites, strict=True)):
            before = metrics.as_numpy_image(out[source[0]][source[1]])
            final = out[composite][0][0].cpu().numpy() > 0.5
            image = metrics.as_numpy_image(out[composite][1])
            changed[turn_index] += int(np.any(image != before, axis=-1)[~final].sum())
            there[turn_index].append(zone_local_edit.edit_there(image, turn))
            if index == 0:
                examples.append((turn.instruction, image))
        last = metrics.as_numpy_image(out[composites[-1]][1])
        outside.append(zone_local_edit.outside_change(last, first, union))
        plain_graph, _, plain_nodes = chain_graph(turns, seed + index, image_name, segments, composite=False)
        plain_last = plain_nodes[-1]["edited"]
        plain = metrics.as_numpy_image(run(plain_graph.nodes, [plain_last])[plain_last][0])
        plain_outside.append(zone_local_edit.outside_change(plain, first, union))
        if index == 0:
            examples = [("source", first), *examples, ("plain chain", plain), ("true regions", union)]
    return MultiTurnResult(
        changed,
        [float(np.mean(values)) for values in there],
        float(np.mean(outside)),
        float(np.mean(plain_outside)),
        chains,
        examples,
    )


def checks(result: MultiTurnResult) -> list[Check]:
    """Per turn: no pixel outside its final mask differs from its source, and its edit is there in some chain;
    over the chain: the change outside the true regions is less than half the plain chain's."""
    rows = []
    for index, action in enumerate(instruction_world.CHAIN):
        n = f"turn {index + 1}, {action}, n={result.chains}"
        rows += [
            Check(
                "ZONE three turns",
                f"pixels outside the turn's final mask that differ from its source ({n})",
                float(result.changed_outside_final_mask[index]),
                "needs 0 (bit-identical)",
                result.changed_outside_final_mask[index] == 0,
            ),
            Check(
                "ZONE three turns",
                f"share of chains with the turn's edit there ({n})",
                result.edit_there[index],
                "needs > 0",
                result.edit_there[index] > 0,
            ),
        ]
    rows.append(
        Check(
            "ZONE three turns",
            f"mean change outside the three true regions after three turns (n={result.chains})",
            result.outside_union,
            f"plain instruction model chained {result.plain_outside_union:.4f}; needs less than half",
            result.outside_union < 0.5 * result.plain_outside_union,
        )
    )
    return rows
