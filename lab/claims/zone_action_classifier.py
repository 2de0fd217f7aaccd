"""Claim: ZONE's action classifier (an MLP on the instruction's text-encoder states) tells a change, an addition and
a removal apart on instructions it never saw.

The pack's Action Classifier Trainer trains it on the lab's text encoder (the instruction models' CLIP) from the toy
world's instructions of one range of seeds, written as a labelled .jsonl (each distinct instruction once); the
objects named by a held-out third of the (colour, shape) pairs never appear in them. The pack's Action Classifier
(the trained file, its ``mean`` rule) then reads the distinct instructions of another seed range that name only
those held-out objects: instructions never seen, down to their object (the world has 18 objects, so 6 removals).
Measured: accuracy per action, against chance (1/3) and the node's keyword rules (each toy instruction begins with
its verb, so the rules are right too).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lab import graphs, instruction_world, world
from lab.checks import Check
from lab.runtime import run

TRAINING_SEEDS = range(0, 600)
HELD_OUT_SEEDS = range(100_000, 100_600)
CLASSIFIER = "lab_zone_action_classifier"
STEPS = 400
CHANCE = 1 / len(instruction_world.ACTIONS)
KEYWORD_RULES = "keyword_rules"


@dataclass
class ActionClassifierResult:
    """Accuracy per action of the trained classifier and of the keyword rules on held-out instructions, their
    counts, the training set's size and the trainer's own report."""

    trained: dict[str, float]
    keyword_rules: dict[str, float]
    held_out: dict[str, int]
    training: int
    report: dict


def held_out_objects() -> frozenset[tuple[str, str]]:
    """Every third (colour, shape) pair in the world's order: the objects no training instruction names."""
    pairs = [(colour, shape) for colour in world.COLOURS for shape in world.SHAPES]
    return frozenset(pairs[1::3])


def instructions(seeds: range, held_out: bool) -> dict[str, str]:
    """Distinct instructions of ``seeds`` (→ action) whose named object is (``held_out``) or is not a held-out
    pair."""
    hidden = held_out_objects()
    found: dict[str, str] = {}
    for seed in seeds:
        sample = instruction_world.edit(seed)
        if ((sample.edited.colour, sample.edited.shape) in hidden) == held_out:
            found.setdefault(sample.instruction, sample.action)
    return found


def write_dataset(labelled: dict[str, str], path: Path) -> Path:
    path.write_text(
        "".join(json.dumps({"instruction": text, "action": action}) + "\n" for text, action in labelled.items())
    )
    return path


def training_graph(dataset: str) -> tuple[graphs.Graph, str]:
    """The pack's Action Classifier Trainer on the lab's text encoder and the .jsonl ``dataset``; the trainer's id."""
    graph = graphs.Graph()
    clip = graphs.load(graph).clip
    trainer = graph.add(
        "PreciseEdit_ActionClassifierTrainer",
        clip=clip,
        dataset=dataset,
        steps=STEPS,
        batch_size=32,
        learning_rate=0.001,
        held_out_fraction=0.05,
        seed=0,
        name=CLASSIFIER,
    )
    return graph, trainer


def measure() -> ActionClassifierResult:
    import folder_paths

    training = instructions(TRAINING_SEEDS, held_out=False)
    unseen = instructions(HELD_OUT_SEEDS, held_out=True)
    held_out = {text: action for text, action in unseen.items() if text not in training}
    dataset = write_dataset(training, Path(folder_paths.get_input_directory()) / f"{CLASSIFIER}.jsonl")
    graph, trainer = training_graph(str(dataset))
    name, _, report, _ = run(graph.nodes, [trainer])[trainer]
    graph = graphs.Graph()
    clip = graphs.load(graph).clip
    methods = (name, KEYWORD_RULES)
    nodes = {
        (text, method): graph.add(
            "PreciseEdit_ActionClassifier", instruction=text, classifier=method, decision_rule="auto", clip=clip
        )
        for text in held_out
        for method in methods
    }
    out = run(graph.nodes, list(nodes.values()))
    right = {method: {action: [] for action in instruction_world.ACTIONS} for method in methods}
    for (text, method), node in nodes.items():
        right[method][held_out[text]].append(out[node][0] == held_out[text])
    accuracy = {
        method: {action: float(np.mean(values)) for action, values in per_action.items()}
        for method, per_action in right.items()
    }
    counts = {action: len(values) for action, values in right[name].items()}
    return ActionClassifierResult(accuracy[name], accuracy[KEYWORD_RULES], counts, len(training), json.loads(report))


def checks(result: ActionClassifierResult) -> list[Check]:
    """Per action: the trained classifier is right on at least 90 % of the held-out instructions (chance 1/3)."""
    rows = []
    for action in instruction_world.ACTIONS:
        value = result.trained[action]
        rows.append(
            Check(
                "ZONE action classifier",
                f"accuracy on held-out instructions ({action}, n={result.held_out[action]})",
                value,
                f"chance {CHANCE:.3f}, keyword rules {result.keyword_rules[action]:.3f}; trained on "
                f"{result.training} instructions naming other objects (trainer's own held-out split "
                f"{result.report['held_out_accuracy']:.3f}); needs ≥ 0.9",
                value >= 0.9,
            )
        )
    return rows
