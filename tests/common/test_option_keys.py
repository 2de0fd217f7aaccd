"""Combo options are short stable keys, and the prose labels that workflows saved before keys still load, pass
ComfyUI's validation and run exactly as their keys: in the in-process executor and on the server."""

import re
from dataclasses import is_dataclass
from typing import Any

import pytest
import torch
from zone_locator_graph import locator_graph

from harness.stand_in_scale import shrink_for_stand_ins
from harness.ui_workflow import example_workflow_dir, ui_prompt

KEY = re.compile(r"[a-z0-9_.+-]+")
SD15 = "v1-5-pruned-emaonly-fp16.safetensors"

# The labels that workflows saved before option keys, as those versions offered them: (node id, input) → label → key.
LAYERS = {
    "1/32 (16×16 at 512 px)": "1_32",
    "1/16 (32×32 at 512 px)": "1_16",
    "1/8 (64×64 at 512 px)": "1_8",
    "1/64 (8×8 at 512 px)": "1_64",
}
LEGACY: dict[tuple[str, str], dict[str, str]] = {
    ("PreciseEdit_CaptureCrossAttention", "layers"): LAYERS,
    ("PreciseEdit_InstructionLocator", "layers"): {
        "ZONE: coarsest input/output layers (16×16 at 512 px)": "zone",
        **LAYERS,
    },
    ("PreciseEdit_InstructionLocator", "branches"): {
        "null instruction: ∅+image and ∅+∅ (ZONE)": "null_instruction",
        "∅+image (middle)": "middle",
        "∅+∅ (negative)": "negative",
        "instruction+image (positive)": "positive",
        "all three": "all",
    },
    ("PreciseEdit_EditRegionFromAttention", "rule"): {
        "released code: D ≤ 54": "released",
        "paper: D < 128": "paper",
        "custom: D < threshold": "custom",
    },
    ("PreciseEdit_ActionClassifier", "classifier"): {"(keyword rules)": "keyword_rules"},
    ("PreciseEdit_IdentityTokenTrainer", "learning_rate_schedule"): {"linear to 0": "linear"},
    ("PreciseEdit_OrthogonalityLoss", "vectors"): {
        "EOS output · [I] output": "eos_output_i_output",
        "EOS output · [I] input embedding": "eos_output_i_input_embedding",
    },
    ("PreciseEdit_NullTextInversion", "mode"): {
        "null-text (optimised)": "null_text",
        "negative-prompt (fast)": "negative_prompt",
        "plain DDIM (fast)": "plain_ddim",
    },
    ("PreciseEdit_PromptToPromptEdit", "output"): {"source and edit": "source_and_edit", "edit only": "edit_only"},
    ("PreciseEdit_ApplyDeltaEdit", "method"): {"delta mapper": "delta_mapper"},
    ("PreciseEdit_MCDMTrainer", "null_image"): {
        "zero latent + black image (as the MCDM Guider)": "as_guider",
        "mid-gray image (official training code)": "official_gray",
    },
}


def node_class(node_id: str) -> type:
    import nodes

    return nodes.NODE_CLASS_MAPPINGS[node_id]


def model_file_names() -> set[str]:
    """Every name a model list of this ComfyUI offers (files of every models folder, MCDM release folders)."""
    import folder_paths

    from precise_edit.nodes.mcdm.nodes_train import list_mcdm_entries

    names = {name for folder in folder_paths.folder_names_and_paths for name in folder_paths.get_filename_list(folder)}
    return names | set(list_mcdm_entries())


def test_every_combo_offers_short_keys_or_model_file_names(comfy, tiny_models):
    from harness.node_docs import pack_node_classes
    from precise_edit.nodes.common.comfy_node_api import io

    files = model_file_names()
    combos = 0
    for cls in pack_node_classes():
        schema = cls.GET_SCHEMA()
        for item in schema.inputs:
            if isinstance(item, io.Combo.Input):
                combos += 1
                prose = [option for option in item.options if not KEY.fullmatch(option) and option not in files]
                assert not prose, f"{schema.node_id}.{item.id} offers {prose}: use short keys, prose in the tooltip"
    assert combos >= len(LEGACY)


@pytest.mark.parametrize(("node_id", "name"), list(LEGACY), ids=[f"{n}.{i}" for n, i in LEGACY])
def test_every_old_label_passes_validation_and_each_key_is_offered_and_explained(comfy, node_id, name):
    cls = node_class(node_id)
    item = next(item for item in cls.GET_SCHEMA().inputs if item.id == name)
    for label, key in LEGACY[node_id, name].items():
        assert key in item.options, f"{node_id}.{name}: {key!r} is not offered"
        assert f"\n{key}: " in item.tooltip, f"{node_id}.{name}: the tooltip does not explain {key!r}"
        assert cls.validate_inputs(**{name: label}) is True
        assert cls.validate_inputs(**{name: key}) is True
    assert cls.validate_inputs(**{name: None}) is True  # a linked input: known only when it runs
    message = cls.validate_inputs(**{name: "no such option"})
    assert message.startswith(f"{name}: 'no such option' is not one of {item.options[0]}")


def option_tables() -> dict[tuple[str, str], Any]:
    from precise_edit.nodes.attention.layer_choice import LAYER_OPTIONS
    from precise_edit.nodes.deltaedit.nodes_direction import METHOD_OPTIONS
    from precise_edit.nodes.mcdm.nodes_train import NULL_IMAGE_OPTIONS
    from precise_edit.nodes.s2edit.identity_training import SCHEDULE_OPTIONS, VECTOR_OPTIONS
    from precise_edit.nodes.s2edit.inversion import MODE_OPTIONS
    from precise_edit.nodes.s2edit.nodes_edit import OUTPUT_OPTIONS
    from precise_edit.nodes.zone.nodes_instruct import CLASSIFIER_OPTIONS
    from precise_edit.nodes.zone.nodes_locate import BRANCH_OPTIONS, RULE_OPTIONS, ZONE_LAYER_OPTIONS

    return {
        ("PreciseEdit_CaptureCrossAttention", "layers"): LAYER_OPTIONS,
        ("PreciseEdit_InstructionLocator", "layers"): ZONE_LAYER_OPTIONS,
        ("PreciseEdit_InstructionLocator", "branches"): BRANCH_OPTIONS,
        ("PreciseEdit_EditRegionFromAttention", "rule"): RULE_OPTIONS,
        ("PreciseEdit_ActionClassifier", "classifier"): CLASSIFIER_OPTIONS,
        ("PreciseEdit_IdentityTokenTrainer", "learning_rate_schedule"): SCHEDULE_OPTIONS,
        ("PreciseEdit_OrthogonalityLoss", "vectors"): VECTOR_OPTIONS,
        ("PreciseEdit_NullTextInversion", "mode"): MODE_OPTIONS,
        ("PreciseEdit_PromptToPromptEdit", "output"): OUTPUT_OPTIONS,
        ("PreciseEdit_ApplyDeltaEdit", "method"): METHOD_OPTIONS,
        ("PreciseEdit_MCDMTrainer", "null_image"): NULL_IMAGE_OPTIONS,
    }


def test_every_old_label_maps_to_its_key_and_nothing_else_does(comfy):
    tables = option_tables()
    assert set(tables) == set(LEGACY)
    for (node_id, name), labels in LEGACY.items():
        table = tables[node_id, name]
        assert table.legacy_labels == labels, f"{node_id}.{name}"
        for label, key in labels.items():
            assert table.key(name, label) == key
            assert table.key(name, key) == key
        with pytest.raises(ValueError, match=f"^{name}: 'Layers' is not one of {table.keys[0]}"):
            table.key(name, "Layers")


def test_a_file_name_beside_the_keys_is_accepted_only_when_listed(comfy):
    tables = option_tables()
    classifier = tables["PreciseEdit_ActionClassifier", "classifier"]
    assert classifier.key("classifier", "mine.pth", "mine.pth") == "mine.pth"
    assert classifier.validate("classifier", "mine.pth", "mine.pth") is True
    assert classifier.validate("classifier", "gone.pth", "mine.pth") == (
        "classifier: 'gone.pth' is not one of keyword_rules, mine.pth"
    )


def zone_graph(branches: str, layers: str, rule: str, classifier: str) -> dict:
    """The shared ZONE locator graph at 64 px with two Euler steps, plus an Action Classifier."""
    graph = locator_graph(
        size=64, sampler="euler", scheduler="normal", branches=branches, layers=layers, rule=rule, threshold=256
    )
    graph["13"] = {
        "class_type": "PreciseEdit_ActionClassifier",
        "inputs": {"instruction": "remove the dog", "classifier": classifier, "decision_rule": "auto"},
    }
    return graph


def s2edit_graph(mode: str, output: str, vectors: str) -> dict:
    """Null-Text Inversion → Prompt-to-Prompt Edit on the tiny SD1.5; Orthogonality Loss's semantic control."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": SD15}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a photo of a cat"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {
            "class_type": "PreciseEdit_NullTextInversion",
            "inputs": {
                "model": ["1", 0],
                "positive": ["2", 0],
                "negative": ["3", 0],
                "latent": ["4", 0],
                "steps": 2,
                "guidance": 7.5,
                "inner_steps": 1,
                "epsilon": 1e-5,
                "mode": mode,
            },
        },
        "6": {
            "class_type": "PreciseEdit_PromptToPromptEdit",
            "inputs": {
                "model": ["1", 0],
                "clip": ["1", 1],
                "inversion": ["5", 0],
                "source_text": "a photo of a cat",
                "target_text": "a photo of a dog",
                "controller": "auto",
                "cross_replace": 0.8,
                "self_replace": 0.4,
                "word_weights": "",
                "blend_words": "",
                "blend_threshold": 0.3,
                "output": output,
            },
        },
        "7": {
            "class_type": "PreciseEdit_OrthogonalityLoss",
            "inputs": {"clip": ["1", 1], "source_prompt": "a photo of a lady", "weight": 0.1, "vectors": vectors},
        },
    }


def attention_graph(layers: str) -> dict:
    """Capture Cross-Attention → KSampler → Attention To Mask on the tiny SD1.5."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": SD15}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a photo of a cat"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "blurry"}},
        "4": {
            "class_type": "PreciseEdit_CaptureCrossAttention",
            "inputs": {
                "model": ["1", 0],
                "clip": ["1", 1],
                "text": "a photo of a cat",
                "words": "cat",
                "layers": layers,
                "heads": "all",
                "start_percent": 0.0,
                "end_percent": 1.0,
                "target": "positive",
            },
        },
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 96, "height": 64, "batch_size": 1}},
        "6": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["4", 0],
                "positive": ["2", 0],
                "negative": ["3", 0],
                "latent_image": ["5", 0],
                "seed": 11,
                "steps": 2,
                "cfg": 5.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
            },
        },
        "7": {
            "class_type": "PreciseEdit_AttentionToMask",
            "inputs": {"attention": ["4", 1], "latent": ["6", 0], "threshold": 0.0},
        },
    }


def trainer_graph(learning_rate_schedule: str) -> dict:
    """Two steps of the Identity Token Trainer on a flat image (the schedules differ in the second update)."""
    from identity_trainer_graph import trainer

    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": SD15}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 8421504}},
        "3": trainer(steps=2, name="pe_option_keys", learning_rate_schedule=learning_rate_schedule),
    }


def assert_same(old: Any, new: Any, where: str) -> None:
    if isinstance(old, torch.Tensor):
        assert torch.equal(old, new), where
    elif isinstance(old, dict):
        assert old.keys() == new.keys(), where
        for key in old:
            assert_same(old[key], new[key], f"{where}[{key!r}]")
    elif isinstance(old, (list, tuple)):
        assert len(old) == len(new), where
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            assert_same(a, b, f"{where}[{index}]")
    elif is_dataclass(old):
        assert_same(vars(old), vars(new), where)
    else:
        assert old == new, where


def learned_vectors(results: dict) -> list:
    """The identity's learned embeddings (its file names differ from run to run)."""
    return [token.vectors for token in results["3"][2].tokens]


# Each case: the graph with the old labels (none of them the default, so a label mapped to the default key fails),
# the graph with their keys, the nodes to run and what of their outputs to compare.
CASES = {
    "zone": (
        lambda: zone_graph("∅+image (middle)", "1/16 (32×32 at 512 px)", "custom: D < threshold", "(keyword rules)"),
        lambda: zone_graph("middle", "1_16", "custom", "keyword_rules"),
        ["12", "13"],
        lambda results: (results["12"], results["13"]),
    ),
    "s2edit": (
        lambda: s2edit_graph("negative-prompt (fast)", "edit only", "EOS output · [I] input embedding"),
        lambda: s2edit_graph("negative_prompt", "edit_only", "eos_output_i_input_embedding"),
        ["6", "7"],
        lambda results: (results["6"], results["7"][0]),
    ),
    "attention": (
        lambda: attention_graph("1/8 (64×64 at 512 px)"),
        lambda: attention_graph("1_8"),
        ["7"],
        lambda results: results["7"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_prompt_with_the_old_labels_runs_as_with_the_keys(run_graph, tiny_models, case):
    old_graph, new_graph, outputs, compared = CASES[case]
    old = compared(run_graph(old_graph(), outputs=outputs))
    new = compared(run_graph(new_graph(), outputs=outputs))
    assert_same(old, new, case)


@pytest.mark.slow
def test_the_trainer_with_the_old_schedule_label_learns_what_its_key_learns_not_the_default(run_graph, tiny_models):
    old, new, constant = (
        learned_vectors(run_graph(trainer_graph(schedule), outputs=["3"]))
        for schedule in ("linear to 0", "linear", "constant")
    )
    assert_same(old, new, "identity vectors")
    assert not all(torch.equal(old[0][key], constant[0][key]) for key in old[0])


def with_old_labels(prompt: dict) -> tuple[dict, int]:
    """``prompt`` with every keyed value that had a label written as that label (as a saved workflow holds it)."""
    replaced = 0
    for node in prompt.values():
        for (node_id, name), labels in LEGACY.items():
            value = node["inputs"].get(name) if node["class_type"] == node_id else None
            label = next((label for label, key in labels.items() if key == value), None)
            if label is not None:
                node["inputs"][name] = label
                replaced += 1
    return prompt, replaced


WORKFLOWS = ["zone_multi_turn", "s2edit_compositional", "deltaedit_unclip"]


@pytest.mark.parametrize("name", WORKFLOWS)
def test_a_workflow_saved_with_the_old_labels_passes_the_servers_validation(comfy_server, name):
    """The server accepts the prompt (a validation error raises PromptFailed); then it is cancelled (stopped if it
    runs, dropped if it waits), as running it is test_workflows' job."""
    prompt, replaced = with_old_labels(ui_prompt(example_workflow_dir() / f"{name}.json", comfy_server.object_info()))
    assert replaced >= 1
    prompt_id = comfy_server.queue(shrink_for_stand_ins(prompt))  # should the cancel come late, the run is short
    comfy_server.cancel(prompt_id)
