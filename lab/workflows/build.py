"""``python -m lab.workflows.build``: write one UI workflow per claim from the graphs the claims measure.

Each claim's API-format graph (``lab.claims.*``) for one world sample is laid out as a UI workflow (the format the
frontend saves: nodes with sockets and ``widgets_values``, links) with SaveImage nodes on its images and masks, so
the workflow a person opens runs exactly what the claim measured. The input images it loads are written beside it,
in ``input/``. ``tests/lab`` converts each file back with the harness's converter and compares.
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from lab import graphs, world

FOLDER = Path(__file__).resolve().parent
INPUT = FOLDER / "input"
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def _widget_values(node: dict[str, Any], info: dict[str, Any]) -> list[Any]:
    """``widgets_values`` in the frontend's layout: each widget input in order, a seed followed by its control
    value, an image upload combo by its button's value; a linked widget keeps its default (the link wins)."""
    values = []
    for section in ("required", "optional"):
        for name in info["input_order"].get(section, []):
            spec = info["input"][section][name]
            kind, options = spec[0], spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if not (isinstance(kind, list) or kind in WIDGET_TYPES) or options.get("forceInput"):
                continue
            value = node["inputs"].get(name, options.get("default"))
            values.append(options.get("default", "") if _is_link(value) else value)
            if kind == "INT" and options.get("control_after_generate", name in ("seed", "noise_seed")):
                values.append("fixed")
            if (isinstance(kind, list) or kind == "COMBO") and options.get("image_upload"):
                values.append("image")
    return values


def api_to_ui(prompt: dict[str, dict[str, Any]], object_info: dict[str, Any]) -> dict[str, Any]:
    """A UI-format workflow with the nodes and links of an API-format ``prompt`` (ids kept), laid out by depth."""
    links: list[list[Any]] = []
    depth: dict[str, int] = {}

    def level(node_id: str) -> int:
        if node_id not in depth:
            sources = [value[0] for value in prompt[node_id]["inputs"].values() if _is_link(value)]
            depth[node_id] = 1 + max((level(source) for source in sources), default=-1)
        return depth[node_id]

    rows: dict[int, int] = defaultdict(int)
    ui_nodes = {}
    for node_id in sorted(prompt, key=int):
        node, info = prompt[node_id], object_info[prompt[node_id]["class_type"]]
        column = level(node_id)
        ui_nodes[node_id] = {
            "id": int(node_id),
            "type": node["class_type"],
            "pos": [column * 380, rows[column] * 260],
            "size": [340, 200],
            "flags": {},
            "order": int(node_id) - 1,
            "mode": 0,
            "inputs": [],
            "outputs": [
                {"name": name, "type": kind, "links": [], "slot_index": slot}
                for slot, (name, kind) in enumerate(zip(info["output_name"], info["output"], strict=True))
            ],
            "properties": {"Node name for S&R": node["class_type"]},
            "widgets_values": _widget_values(node, info),
        }
        rows[column] += 1
    for node_id in sorted(prompt, key=int):
        info = object_info[prompt[node_id]["class_type"]]
        for section in ("required", "optional"):
            for name in info["input_order"].get(section, []):
                value = prompt[node_id]["inputs"].get(name)
                if not _is_link(value):
                    continue
                origin, slot = value
                kind = object_info[prompt[origin]["class_type"]]["output"][slot]
                link_id = len(links) + 1
                links.append([link_id, int(origin), slot, int(node_id), len(ui_nodes[node_id]["inputs"]), kind])
                socket = {"name": name, "type": kind, "link": link_id}
                if kind in WIDGET_TYPES:
                    socket["widget"] = {"name": name}
                ui_nodes[node_id]["inputs"].append(socket)
                ui_nodes[origin]["outputs"][slot]["links"].append(link_id)
    return {
        "last_node_id": max(int(node_id) for node_id in prompt),
        "last_link_id": len(links),
        "nodes": list(ui_nodes.values()),
        "links": links,
        "groups": [],
        "config": {},
        "extra": {},
        "version": 0.4,
    }


def _save(graph: graphs.Graph, image: list, prefix: str) -> None:
    graph.add("SaveImage", images=image, filename_prefix=f"lab/{prefix}")


def claim_graphs(write_inputs: bool = False) -> dict[str, graphs.Graph]:
    """One graph per claim, for the first sample each claim measures, with SaveImage nodes; ``write_inputs``
    writes the images they load to ``input/``."""
    from lab.claims import attention_mask, null_text_inversion, prompt_to_prompt

    result = {}
    sample = world.scene(500, held_out=None, count=2)
    graph, to_mask, decoded = attention_mask.capture_graph(
        sample.caption, list(attention_mask.word_masks(sample)), 500, None
    )
    _save(graph, [decoded, 0], "attention_image")
    _save(graph, [graph.add("MaskToImage", mask=[to_mask, 0]), 0], "attention_masks")
    _save(graph, [to_mask, 1], "attention_heatmaps")
    result["lab_attention_mask"] = graph
    sample, new_colour = prompt_to_prompt.scene_and_new_colour(0, 700)
    graph, decoders = prompt_to_prompt.edit_graph(sample, new_colour, 700)
    for name, node in decoders.items():
        _save(graph, [node, 0], f"p2p_{name}")
    result["lab_prompt_to_prompt"] = graph
    sample = world.scene(900, held_out=False, count=2)
    name = "lab_nti_900.png"
    if write_inputs:
        from PIL import Image

        INPUT.mkdir(exist_ok=True)
        Image.fromarray((sample.image * 255).round().astype("uint8")).save(INPUT / name)
    used = {obj.colour for obj in sample.labels["objects"]}
    new_colour = next(colour for colour in world.COLOURS if colour not in used)
    graph, nodes = null_text_inversion.inversion_graph(sample, "real", 900, new_colour, name)
    for key, node in nodes.items():
        _save(graph, [node, 0], f"nti_{key}")
    result["lab_null_text_inversion"] = graph
    result["lab_zone_local_edit"] = zone_graph(write_inputs)
    result.update(zone_claim_graphs(write_inputs))
    result["lab_s2edit_identity"] = s2edit_graph(write_inputs)
    result["lab_mcdm_portrait_edit"] = mcdm_graph(write_inputs)
    result["lab_deltaedit"] = deltaedit_graph(write_inputs)
    return result


def deltaedit_graph(write_inputs: bool) -> graphs.Graph:
    """DeltaEdit's first edit on its first source portrait: the mapper trained on the portrait folder, then the
    unedited embedding and its three edits (mapper, straightforward, mapper at the paper's threshold) rendered by
    the unCLIP model."""
    from lab.claims import deltaedit_text_edit as claim

    edit = claim.EDITS[0]
    face, seed = claim.source_portrait(edit, 0)
    name = f"lab_deltaedit_{seed}.png"
    if write_inputs:
        from PIL import Image

        INPUT.mkdir(exist_ok=True)
        image = world.render_portrait(face, seed).image
        Image.fromarray((image * 255).round().astype("uint8")).save(INPUT / name)
    graph, nodes = claim.edit_graph({edit: [(name, seed)]})
    for kind in ("unedited", *claim.VARIANTS):
        _save(graph, [nodes[(kind, edit, 0)], 0], f"deltaedit_{kind}")
    return graph


def mcdm_graph(write_inputs: bool) -> graphs.Graph:
    """MCDM's edits of the first held-out pair its claim measures: every route's image and the edit mask saved."""
    from lab import portrait_pairs
    from lab.claims import mcdm_portrait_edit

    pair = portrait_pairs.held_out_pairs(1, mcdm_portrait_edit.SEED)[0]
    name = mcdm_portrait_edit.input_name(pair.seed)
    if write_inputs:
        from PIL import Image

        INPUT.mkdir(exist_ok=True)
        Image.fromarray((pair.source * 255).round().astype("uint8")).save(INPUT / name)
    graph, nodes = mcdm_portrait_edit.edit_graph(pair, pair.seed, name)
    for route in mcdm_portrait_edit.ROUTES:
        _save(graph, [nodes[route], 0], f"mcdm_{route.replace(' ', '_').replace('+', 'and')}")
    _save(graph, [graph.add("MaskToImage", mask=[nodes["mask"], 0]), 0], "mcdm_edit_mask")
    return graph


def s2edit_graph(write_inputs: bool) -> graphs.Graph:
    """S2Edit's full method on the first portrait its claim measures: [I] learned, every edit saved."""
    from lab.claims import s2edit_identity

    sample, seed = s2edit_identity.portrait_with_edits(s2edit_identity.SEEDS[0])
    if write_inputs:
        from PIL import Image

        INPUT.mkdir(exist_ok=True)
        for file_name, image in s2edit_identity.portrait_files(sample, seed).items():
            Image.fromarray((image * 255).round().astype("uint8")).save(INPUT / file_name)
    graph, decoders = s2edit_identity.ablation_graph(sample, seed, s2edit_identity.FULL)
    for key, node in decoders.items():
        _save(graph, [node, 0], f"s2edit_{key}")
    return graph


def zone_graph(write_inputs: bool) -> graphs.Graph:
    """ZONE's local edit of the first edit its claim measures, with its images and masks saved."""
    from lab import instruction_world
    from lab.claims import zone_local_edit

    seed = zone_local_edit.EDIT_SEED
    sample = instruction_world.edit(seed, instruction_world.ACTIONS[0])
    stem = f"lab_zone_{seed}"
    if write_inputs:
        INPUT.mkdir(exist_ok=True)
        zone_local_edit.write_inputs(sample, INPUT, stem)
    graph, nodes = zone_local_edit.edit_graph(sample.instruction, seed, *zone_local_edit.input_names(stem))
    _save(graph, [nodes["edited"], 0], "zone_instruction_model")
    for route in zone_local_edit.ROUTES:
        _save(graph, [nodes[f"{route} composite"], 1], f"zone_{route}_composite")
        for name, mask in (
            ("rough_mask", [nodes[f"{route} rough"], 0]),
            ("final_mask", [nodes[f"{route} composite"], 0]),
        ):
            _save(graph, [graph.add("MaskToImage", mask=mask), 0], f"zone_{route}_{name}")
    return graph


def zone_claim_graphs(write_inputs: bool) -> dict[str, graphs.Graph]:
    """ZONE's other claims: the fused guidance on the first removal, the first chain of three turns, the action
    classifier's training (its .jsonl written to ``input/``, named relative to the pack)."""
    from lab import instruction_world
    from lab.claims import zone_action_classifier, zone_fused_remove, zone_local_edit, zone_multi_turn

    result = {}
    seed = zone_fused_remove.SEED
    sample = instruction_world.edit(seed, "remove")
    stem = f"lab_zone_remove_{seed}"
    if write_inputs:
        INPUT.mkdir(exist_ok=True)
        zone_local_edit.write_inputs(sample, INPUT, stem)
    names = zone_local_edit.input_names(stem)
    graph, edited = zone_fused_remove.variant_graph(zone_fused_remove.FUSED, sample.instruction, seed, *names)
    _save(graph, [edited, 0], "zone_fused_remove")
    result["lab_zone_fused_remove"] = graph
    seed = zone_multi_turn.SEED
    turns = instruction_world.chain(seed)
    stem = f"lab_zone_chain_{seed}"
    if write_inputs:
        zone_multi_turn.write_inputs(turns, INPUT, stem)
    image_name = zone_local_edit.input_names(f"{stem}_turn0")[0]
    segments = [zone_local_edit.input_names(f"{stem}_turn{index}")[1] for index in range(len(turns))]
    graph, _, nodes = zone_multi_turn.chain_graph(turns, seed, image_name, segments)
    for index, turn_nodes in enumerate(nodes):
        _save(graph, [turn_nodes[f"{zone_multi_turn.ROUTE} composite"], 1], f"zone_turn{index + 1}")
    result["lab_zone_multi_turn"] = graph
    name = f"{zone_action_classifier.CLASSIFIER}.jsonl"
    if write_inputs:
        training = zone_action_classifier.instructions(zone_action_classifier.TRAINING_SEEDS, held_out=False)
        zone_action_classifier.write_dataset(training, INPUT / name)
    graph, _ = zone_action_classifier.training_graph(str((INPUT / name).relative_to(FOLDER.parents[1])))
    result["lab_zone_action_classifier"] = graph
    return result


def main() -> None:
    from harness.workflow_format import object_info_inprocess
    from lab import runtime

    with tempfile.TemporaryDirectory(prefix="precise-edit-lab-") as tmp:
        runtime.start(Path(tmp) / "comfy")
        object_info = object_info_inprocess()
        for stem, graph in claim_graphs(write_inputs=True).items():
            path = FOLDER / f"{stem}.json"
            path.write_text(json.dumps(api_to_ui(graph.nodes, object_info), indent=1) + "\n")
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
