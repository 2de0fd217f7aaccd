"""ZONE's instruction stage: the action classifier (and its trainer) and the fused InstructPix2Pix + MagicBrush guider.

PreciseEdit_ActionClassifier: is an instruction a change, an addition or a removal (ZONE's A_I), and what follows.

Classifier files live in ``models/action_classifiers``: the released ``ckpts/action_classifier.pth`` (read with
``torch.load(weights_only=True)``) or a ``.safetensors`` from Action Classifier Trainer, whose metadata names the
decision rule it was trained for.

PreciseEdit_ActionClassifierTrainer: train ZONE's action classifier on a file of labelled instructions.

PreciseEdit_FusedInstructGuider: InstructPix2Pix three-way guidance, optionally fused with MagicBrush (ZONE).

The guider's conds follow ComfyUI's InstructPix2Pix conventions (InstructPixToPixConditioning + DualCFGGuider):
``positive`` = instruction + source image latent, ``middle`` = negative prompt + source image latent,
``negative`` = negative prompt + an all-zero image latent (IP2P's concat_cond without ``concat_latent_image``). At
every model call both models predict the denoised latent for the three branches at the sampler's current latent,
each is guided by ``core.zone.ip2p_guidance`` and the two are blended by ``core.zone.fused_guidance`` (Eq. 5 per model
call: exact for Euler, DDIM and the other samplers that are affine in the predictions; see there).
"""

import csv
import json
from pathlib import Path

import comfy.model_management
import comfy.model_patcher
import comfy.patcher_extension
import comfy.samplers
import comfy.utils
import folder_paths
import node_helpers
import torch
from comfy.model_patcher import ModelPatcher

from ...core.files.atomic_file import save_safetensors_atomically
from ...core.zone.action_classifier import (
    ACTIONS,
    BETA,
    DECISION_RULES,
    SAM_IMAGE,
    ActionMLP,
    held_out_split,
    mean_decision,
    mlp_from_state_dict,
    padded,
    released_decision,
    train_action_mlp,
)
from ...core.zone.fused_guidance import fuse_predictions
from ...core.zone.instruction_rules import classify_instruction
from ...core.zone.ip2p_guidance import instruct_pix2pix_guidance
from ..common.comfy_node_api import io
from ..common.model_folders import model_path, named_path, register_model_folder
from ..common.option_keys import Option, OptionKeys
from ..common.trainer_progress import TrainerProgress
from .action_classifier_text import instruction_states, instruction_states_up_to_eos
from .ip2p_model import require_instruct_pix2pix

ACTION_CLASSIFIERS = "action_classifiers"


RULES = "keyword_rules"


CLASSIFIER_OPTIONS = OptionKeys(
    Option(RULES, "transparent keyword rules (no CLIP needed)", "(keyword rules)"),
)


METADATA_KEY = "precise_edit_action_classifier"


AUTO = "auto"


def load_classifier(name: str) -> tuple[ActionMLP, str]:
    """The MLP in ``models/action_classifiers/<name>`` and the rule it is meant for (``released`` without metadata)."""
    path = model_path(ACTION_CLASSIFIERS, name)
    try:
        state, metadata = comfy.utils.load_torch_file(str(path), safe_load=True, return_metadata=True)
    except Exception as error:
        raise ValueError(
            f"classifier {name!r} could not be read as a tensor checkpoint ({type(error).__name__}: {error})"
        ) from error
    try:
        mlp = mlp_from_state_dict(state)
    except ValueError as error:
        raise ValueError(f"classifier {name!r}: {error}") from error
    info = json.loads((metadata or {}).get(METADATA_KEY, "{}"))
    return mlp, info.get("decision_rule", "released")


def classify_with_mlp(mlp: ActionMLP, clip: object, instruction: str, rule: str) -> tuple[str, dict]:
    """The action of ``instruction`` by ``mlp`` on ``clip``'s 77-token last_hidden_state, and the evidence."""
    states, count = instruction_states(clip, instruction)
    if states.shape[-1] != mlp.fc1.in_features:
        raise ValueError(
            f"the classifier reads {mlp.fc1.in_features}-d token states but clip gives {states.shape[-1]}-d ones: "
            "connect the CLIP it was trained with (ZONE: InstructPix2Pix's CLIP-L)"
        )
    with torch.no_grad():
        logits = mlp(states[None].to(next(mlp.parameters()).device)).cpu()
    if rule == "released":
        index = int(released_decision(logits)[0])
        evidence = {"peak_token_per_class": dict(zip(ACTIONS, torch.max(logits, 1)[1][0].tolist(), strict=True))}
    else:
        index = int(mean_decision(logits, torch.tensor([count]))[0])
        mean = logits[0, :count].mean(0)
        evidence = {"mean_logits": dict(zip(ACTIONS, [round(v, 5) for v in mean.tolist()], strict=True))}
    return ACTIONS[index], {**evidence, "tokens": count}


class ActionClassifier(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_ActionClassifier",
            display_name="Action Classifier (ZONE)",
            category="Precise Edit/ZONE",
            description=(
                "Classifies an edit instruction as change, add or remove (ZONE's action classifier) and outputs "
                "what ZONE derives from it: the MagicBrush fusion weight β (0.2 for remove, 0.01 otherwise) and "
                "which image SAM segments (the original for remove, the edited image otherwise; Image To Segment "
                "picks it). Uses a learned MLP on the CLIP text states, or transparent keyword rules when no "
                "classifier file is chosen."
            ),
            inputs=[
                io.String.Input(
                    "instruction",
                    multiline=True,
                    default="",
                    tooltip="The edit instruction, e.g. 'turn the cat into a tiger' or 'remove the dog'.",
                ),
                io.Combo.Input(
                    "classifier",
                    options=[*CLASSIFIER_OPTIONS.keys, *folder_paths.get_filename_list(ACTION_CLASSIFIERS)],
                    default=RULES,
                    tooltip=CLASSIFIER_OPTIONS.tooltip(
                        "A classifier file in models/action_classifiers (ZONE's action_classifier.pth or one "
                        "trained here), or:"
                    ),
                ),
                io.Combo.Input(
                    "decision_rule",
                    options=[AUTO, *DECISION_RULES],
                    default=AUTO,
                    tooltip="released: the released code's rule (the class whose peak-logit token comes last). "
                    "mean: argmax of the logits averaged over the instruction's tokens. auto: what the file was "
                    "made for (released for .pth files, the trainer's rule for ours).",
                ),
                io.Clip.Input(
                    "clip",
                    optional=True,
                    tooltip="The text encoder the classifier reads: InstructPix2Pix's CLIP for ZONE's checkpoint. "
                    "Needed for a classifier file, ignored by the keyword rules.",
                ),
            ],
            outputs=[
                io.String.Output(display_name="ACTION", tooltip="change, add or remove."),
                io.Float.Output(
                    display_name="BETA",
                    tooltip="ZONE's MagicBrush weight in the fused guidance: 0.2 for remove, 0.01 otherwise.",
                ),
                io.String.Output(
                    display_name="SAM_IMAGE",
                    tooltip="Which image SAM should segment: 'original' for remove, 'edited' otherwise.",
                ),
                io.Boolean.Output(
                    display_name="SEGMENT_ORIGINAL",
                    tooltip="True when SAM should segment the original image (remove): connect it to Image To "
                    "Segment's segment_original.",
                ),
                io.String.Output(
                    display_name="DETAILS",
                    tooltip="JSON: the method, the decision rule and its evidence (logits or the matched keyword).",
                ),
            ],
        )

    @classmethod
    def validate_inputs(cls, classifier: str | None = None) -> bool | str:
        files = folder_paths.get_filename_list(ACTION_CLASSIFIERS)
        return CLASSIFIER_OPTIONS.validate("classifier", classifier, *files)

    @classmethod
    def execute(cls, instruction: str, classifier: str, decision_rule: str, clip: object = None) -> io.NodeOutput:
        classifier = CLASSIFIER_OPTIONS.key(
            "classifier", classifier, *folder_paths.get_filename_list(ACTION_CLASSIFIERS)
        )
        if not instruction.strip():
            raise ValueError(
                "instruction is empty: write the edit, e.g. 'remove the dog' or 'turn the cat into a tiger'"
            )
        if decision_rule not in (AUTO, *DECISION_RULES):
            raise ValueError(f"decision_rule must be one of {(AUTO, *DECISION_RULES)}, got {decision_rule!r}")
        if classifier == RULES:
            decision = classify_instruction(instruction)
            action, details = decision.action, {"method": "keyword rules", "cue": decision.cue}
        else:
            if clip is None:
                raise ValueError(
                    f"classifier {classifier!r} reads CLIP text states: connect clip (InstructPix2Pix's CLIP for "
                    f"ZONE's checkpoint) or choose {RULES}"
                )
            mlp, made_for = load_classifier(classifier)
            rule = made_for if decision_rule == AUTO else decision_rule
            mlp = mlp.to(comfy.model_management.get_torch_device())
            action, evidence = classify_with_mlp(mlp, clip, instruction, rule)
            details = {"method": "classifier", "classifier": classifier, "decision_rule": rule, **evidence}
        details["action"] = action
        return io.NodeOutput(
            action, BETA[action], SAM_IMAGE[action], SAM_IMAGE[action] == "original", json.dumps(details)
        )


register_model_folder(ACTION_CLASSIFIERS, (".safetensors", ".pth", ".pt"))


PACK_ROOT = Path(__file__).resolve().parents[2]


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
        progress = TrainerProgress(steps)
        device = comfy.model_management.get_torch_device()
        with torch.inference_mode(False), torch.enable_grad():
            stack, lengths = padded([state.clone() for state in states])
            stack, targets = stack.to(device), torch.tensor(labels)
            fit = torch.tensor(train)
            mlp = train_action_mlp(
                stack[fit],
                lengths[fit],
                targets[fit],
                steps=steps,
                learning_rate=learning_rate,
                batch_size=batch_size,
                seed=seed,
                on_step=progress.record,
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
            "final_loss": round(progress.final_loss, 6),
            "steps": steps,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "seed": seed,
            "decision_rule": "mean",
            "labels": list(ACTIONS),
        }
        save_safetensors_atomically(tensors, path, {METADATA_KEY: json.dumps(report), "format": "pt"})
        return io.NodeOutput(path.name, held_accuracy, json.dumps(report), progress.loss_map())


MAGICBRUSH_KEY = "precise_edit.magicbrush"


IMAGE_KEY = "concat_latent_image"


def with_image(conditioning: list, image: torch.Tensor | None) -> list:
    """A copy of ``conditioning`` whose entries carry ``image`` as the IP2P image latent (None: no image, zeros)."""
    out = []
    for embedding, options in conditioning:
        options = options.copy()
        options.pop(IMAGE_KEY, None)
        if image is not None:
            options[IMAGE_KEY] = image
        out.append([embedding, options])
    return out


class FusedInstructGuider(comfy.samplers.CFGGuider):
    """CFGGuider whose prediction is the IP2P-guided denoised latent, blended with MagicBrush's by β."""

    def __init__(
        self,
        model: ModelPatcher,
        magicbrush: ModelPatcher | None,
        *,
        text_guidance: float,
        image_guidance: float,
        beta: float,
    ) -> None:
        patcher = model.clone()
        self.magicbrush: ModelPatcher | None = None
        if magicbrush is not None and beta > 0:
            if magicbrush.model is model.model:
                self.magicbrush = magicbrush
            else:
                patcher.set_additional_models(MAGICBRUSH_KEY, [magicbrush])
                self.magicbrush = patcher.get_additional_models_with_key(MAGICBRUSH_KEY)[0]
        super().__init__(patcher)
        self.text_guidance = text_guidance
        self.image_guidance = image_guidance
        self.beta = beta
        self.magicbrush_options: dict = {}

    def set_instruction(self, positive: list, negative: list, image: torch.Tensor) -> None:
        middle = node_helpers.conditioning_set_values(with_image(negative, image), {"prompt_type": "negative"})
        self.inner_set_conds(
            {"positive": with_image(positive, image), "middle": middle, "negative": with_image(negative, None)}
        )

    def inner_sample(self, noise, latent_image, device, sampler, sigmas, *args, **kwargs):
        if self.magicbrush is not None:
            options = comfy.model_patcher.create_model_options_clone(self.magicbrush.model_options)
            transformer_options = options.setdefault("transformer_options", {})
            for name in ("wrappers", "callbacks"):
                comfy.patcher_extension.merge_nested_dicts(
                    transformer_options.setdefault(name, {}), getattr(self.magicbrush, name), copy_dict1=False
                )
            transformer_options["sample_sigmas"] = sigmas
            self.magicbrush_options = options
        return super().inner_sample(noise, latent_image, device, sampler, sigmas, *args, **kwargs)

    def guided(self, base_model, x, timestep, model_options) -> torch.Tensor:
        conds = [self.conds.get("negative"), self.conds.get("middle"), self.conds.get("positive")]
        uncond, image, text = comfy.samplers.calc_cond_batch(base_model, conds, x, timestep, model_options)
        return instruct_pix2pix_guidance(
            text, image, uncond, text_scale=self.text_guidance, image_scale=self.image_guidance
        )

    def predict_noise(self, x, timestep, model_options={}, seed=None):  # noqa: B006 (ComfyUI's signature)
        ip2p = self.guided(self.inner_model, x, timestep, model_options)
        if self.magicbrush is None:
            return ip2p
        base = self.magicbrush.model
        previous = base.current_patcher
        base.current_patcher = self.magicbrush
        try:
            magicbrush = self.guided(base, x, timestep, self.magicbrush_options)
        finally:
            base.current_patcher = previous
        return fuse_predictions(ip2p, magicbrush, self.beta)


class FusedInstructGuiderNode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_FusedInstructGuider",
            display_name="Fused Instruct Guider (ZONE)",
            category="Precise Edit/ZONE",
            description=(
                "InstructPix2Pix guidance ε = ε(∅,∅) + s_T(ε(text,img) − ε(∅,img)) + s_I(ε(∅,img) − ε(∅,∅)) as a "
                "GUIDER for SamplerCustomAdvanced, optionally fused with MagicBrush as ZONE does: at every model "
                "call the two models' guided predictions are blended (D_ip2p + β D_mb)/(1 + β), from one shared "
                "starting noise, with any sampler."
            ),
            inputs=[
                io.Model.Input(
                    "model", tooltip="InstructPix2Pix model (8 input channels); the Instruction Locator's output."
                ),
                io.Conditioning.Input("positive", tooltip="The instruction, e.g. CLIPTextEncode('make the hat blue')."),
                io.Conditioning.Input("negative", tooltip="The null instruction, usually CLIPTextEncode('')."),
                io.Latent.Input(
                    "image",
                    tooltip="The source image's latent (VAE Encode of the image to edit): the image condition c_I.",
                ),
                io.Float.Input(
                    "text_guidance",
                    default=7.5,
                    min=0.0,
                    max=100.0,
                    step=0.1,
                    round=0.01,
                    tooltip="s_T, how strongly the instruction is followed (ZONE: 7.5).",
                ),
                io.Float.Input(
                    "image_guidance",
                    default=1.5,
                    min=0.0,
                    max=100.0,
                    step=0.05,
                    round=0.01,
                    tooltip="s_I, how close the result stays to the source image (ZONE: 1.5).",
                ),
                io.Float.Input(
                    "beta",
                    default=0.01,
                    min=0.0,
                    max=10.0,
                    step=0.01,
                    tooltip="β, MagicBrush's weight: 0.2 for 'remove' instructions, 0.01 otherwise (released code); "
                    "0 gives plain InstructPix2Pix.",
                ),
                io.Model.Input(
                    "magicbrush",
                    optional=True,
                    tooltip="MagicBrush model (an InstructPix2Pix fine-tune of the same architecture); without it "
                    "the guider is plain InstructPix2Pix.",
                ),
            ],
            outputs=[
                io.Guider.Output(display_name="GUIDER", tooltip="Connect to SamplerCustomAdvanced's guider."),
                io.Latent.Output(
                    display_name="LATENT",
                    tooltip="An all-zero latent of the image's size for SamplerCustomAdvanced's latent_image: "
                    "InstructPix2Pix starts from pure noise.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        model,
        positive: list,
        negative: list,
        image: dict,
        text_guidance: float,
        image_guidance: float,
        beta: float,
        magicbrush=None,
    ) -> io.NodeOutput:
        require_instruct_pix2pix(model)
        if magicbrush is not None:
            require_instruct_pix2pix(magicbrush, "magicbrush")
            if type(magicbrush.model) is not type(model.model):
                raise ValueError(
                    f"magicbrush is a {type(magicbrush.model).__name__} but model is a {type(model.model).__name__}: "
                    "the two models must share one architecture and latent space"
                )
        samples = image["samples"]
        if samples.dim() != 4 or samples.shape[1] != model.model.latent_format.latent_channels:
            raise ValueError(
                f"image must be a {model.model.latent_format.latent_channels}-channel image latent (VAE Encode of the "
                f"image to edit); got samples of shape {tuple(samples.shape)}"
            )
        guider = FusedInstructGuider(
            model, magicbrush, text_guidance=text_guidance, image_guidance=image_guidance, beta=beta
        )
        guider.set_instruction(positive, negative, samples)
        return io.NodeOutput(guider, {"samples": torch.zeros_like(samples)})


NODES = [ActionClassifier, ActionClassifierTrainer, FusedInstructGuiderNode]
