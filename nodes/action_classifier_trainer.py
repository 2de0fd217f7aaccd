"""PreciseEdit_ActionClassifierTrainer: train ZONE's action classifier on a file of labelled instructions."""

import csv
import json
from pathlib import Path

import comfy.model_management
import comfy.utils
import torch

from ..core.action_classifier import ACTIONS, held_out_split, mean_decision, padded, train_action_mlp
from ..core.atomic_file import save_safetensors_atomically
from .action_classifier import ACTION_CLASSIFIERS, METADATA_KEY
from .action_classifier_text import instruction_states_up_to_eos
from .comfy_node_api import io
from .loss_curve_preview import PREVIEW_SIZE, PREVIEWS, loss_curve
from .model_folders import named_path

PACK_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATASET = "data/zone_instructions.jsonl"


def dataset_path(dataset: str) -> Path:
    """``dataset`` as given, else relative to the pack (where data/zone_instructions.jsonl ships)."""
    for candidate in (Path(dataset).expanduser(), PACK_ROOT / dataset):
        if dataset.strip() and candidate.is_file():
            return candidate
    raise FileNotFoundError(f"dataset {dataset!r} is not a file (absolute, or relative to {PACK_ROOT})")


def read_instructions(path: Path) -> tuple[list[str], list[int]]:
    """Instructions and label indices from ``.jsonl`` ({"instruction", "action"}) or ``.csv`` (same columns)."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            rows = [(index + 2, row) for index, row in enumerate(csv.DictReader(handle))]
    else:
        lines = path.read_text(encoding="utf-8").splitlines()
        rows = []
        for number, line in enumerate(lines, 1):
            if line.strip():
                try:
                    rows.append((number, json.loads(line)))
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path.name} line {number} is not JSON: {error}") from error
    texts, labels = [], []
    for number, row in rows:
        text, action = str(row.get("instruction") or "").strip(), str(row.get("action") or "").strip().lower()
        if not text or action not in ACTIONS:
            raise ValueError(
                f"{path.name} line {number}: expected a non-empty 'instruction' and an 'action' in {ACTIONS}, "
                f"got {row!r}"
            )
        texts.append(text)
        labels.append(ACTIONS.index(action))
    missing = [action for index, action in enumerate(ACTIONS) if index not in labels]
    if missing:
        raise ValueError(f"{path.name} has no examples of {missing}: every action needs some")
    return texts, labels


def accuracy(mlp: torch.nn.Module, states: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor) -> float:
    if labels.numel() == 0:
        return float("nan")
    with torch.no_grad():
        return float((mean_decision(mlp(states), lengths).cpu() == labels).float().mean())


class ActionClassifierTrainer(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_ActionClassifierTrainer",
            display_name="Action Classifier Trainer (ZONE)",
            category="Precise Edit/ZONE",
            description=(
                "Trains ZONE's action classifier (768→128→3 MLP on the CLIP text states) on labelled instructions "
                "with a stratified held-out split, reports train and held-out accuracy, and saves it to "
                "models/action_classifiers/<name>.safetensors for Action Classifier (mean decision rule)."
            ),
            is_output_node=True,
            inputs=[
                io.Clip.Input(
                    "clip",
                    tooltip="The text encoder the classifier will read: InstructPix2Pix's CLIP for ZONE. It is not "
                    "trained.",
                ),
                io.String.Input(
                    "dataset",
                    default=DEFAULT_DATASET,
                    tooltip="A .jsonl or .csv of instruction/action (change, add, remove), absolute or relative to "
                    "the pack; the shipped one has 600 instructions.",
                ),
                io.Int.Input("steps", default=400, min=1, max=100_000, tooltip="Optimiser steps (mini-batches)."),
                io.Int.Input("batch_size", default=32, min=1, max=4096, tooltip="Instructions per step."),
                io.Float.Input(
                    "learning_rate",
                    default=0.001,
                    min=1e-6,
                    max=1.0,
                    step=0.0001,
                    tooltip="Adam learning rate (the paper reports 0.1 for 30 epochs; 0.001 is steadier here).",
                ),
                io.Float.Input(
                    "held_out_fraction",
                    default=0.25,
                    min=0.05,
                    max=0.95,
                    step=0.05,
                    tooltip="Share of each action kept out of training to measure accuracy (ZONE: 150 of 600).",
                ),
                io.Int.Input(
                    "seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, tooltip="Split, initial weights, order."
                ),
                io.String.Input(
                    "name",
                    default="zone_action_classifier",
                    tooltip="Saved as models/action_classifiers/<name>.safetensors (replacing a file of that name); "
                    "'sub/name' saves in a subfolder. '..', absolute paths, drive letters and Windows device names "
                    "(CON, NUL, …) are refused.",
                ),
            ],
            outputs=[
                io.String.Output(display_name="CLASSIFIER", tooltip="The saved file's name, for Action Classifier."),
                io.Float.Output(display_name="HELD_OUT_ACCURACY", tooltip="Accuracy on the held-out instructions."),
                io.String.Output(
                    display_name="REPORT",
                    tooltip="JSON: sizes of the split, train and held-out accuracy, final loss, settings.",
                ),
                io.LossMap.Output(display_name="LOSS", tooltip="Loss per step, for Plot Loss Graph."),
            ],
        )

    @classmethod
    def execute(
        cls,
        clip: object,
        dataset: str,
        steps: int,
        batch_size: int,
        learning_rate: float,
        held_out_fraction: float,
        seed: int,
        name: str,
    ) -> io.NodeOutput:
        path = named_path(ACTION_CLASSIFIERS, name)
        source = dataset_path(dataset)
        texts, labels = read_instructions(source)
        train, held_out = held_out_split(labels, held_out_fraction, seed)
        states, _ = instruction_states_up_to_eos(clip, texts)
        progress = comfy.utils.ProgressBar(steps)
        losses: list[float] = []
        preview_every = max(1, steps // PREVIEWS)

        def on_step(step: int, loss: float) -> None:
            comfy.model_management.throw_exception_if_processing_interrupted()
            losses.append(loss)
            preview = None
            if step % preview_every == 0 or step == steps:
                preview = ("JPEG", loss_curve(losses, steps), max(PREVIEW_SIZE))
            progress.update_absolute(step, steps, preview)

        device = comfy.model_management.get_torch_device()
        with torch.inference_mode(False), torch.enable_grad():
            stack, lengths = padded([state.clone() for state in states])
            stack, targets = stack.to(device), torch.tensor(labels)
            fit = torch.tensor(train)
            mlp = train_action_mlp(
                stack[fit], lengths[fit], targets[fit], steps, learning_rate, batch_size, seed, on_step=on_step
            )
            held = torch.tensor(held_out, dtype=torch.long)
            train_accuracy = accuracy(mlp, stack[fit], lengths[fit], targets[fit])
            held_accuracy = accuracy(mlp, stack[held], lengths[held], targets[held])
            tensors = {key: value.detach().cpu().contiguous() for key, value in mlp.state_dict().items()}
        report = {
            "dataset": str(source),
            "train": len(train),
            "held_out": len(held_out),
            "train_accuracy": round(train_accuracy, 4),
            "held_out_accuracy": round(held_accuracy, 4),
            "final_loss": round(losses[-1], 6),
            "steps": steps,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "seed": seed,
            "decision_rule": "mean",
            "labels": list(ACTIONS),
        }
        save_safetensors_atomically(tensors, path, {METADATA_KEY: json.dumps(report), "format": "pt"})
        return io.NodeOutput(path.name, held_accuracy, json.dumps(report), {"loss": losses})
