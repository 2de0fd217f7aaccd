"""PreciseEdit_ActionClassifier: is an instruction a change, an addition or a removal (ZONE's A_I), and what follows.

Classifier files live in ``models/action_classifiers``: the released ``ckpts/action_classifier.pth`` (read with
``torch.load(weights_only=True)``) or a ``.safetensors`` from Action Classifier Trainer, whose metadata names the
decision rule it was trained for.
"""

import json

import comfy.model_management
import comfy.utils
import folder_paths
import torch

from ..core.action_classifier import (
    ACTIONS,
    BETA,
    DECISION_RULES,
    SAM_IMAGE,
    ActionMLP,
    mean_decision,
    mlp_from_state_dict,
    released_decision,
)
from ..core.instruction_rules import classify_instruction
from .action_classifier_text import instruction_states
from .comfy_node_api import io
from .model_folders import model_path, register_model_folder

ACTION_CLASSIFIERS = "action_classifiers"
RULES = "(keyword rules)"
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
                    options=[RULES, *folder_paths.get_filename_list(ACTION_CLASSIFIERS)],
                    default=RULES,
                    tooltip="A classifier file in models/action_classifiers (ZONE's action_classifier.pth or one "
                    "trained here), or the keyword rules (no CLIP needed).",
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
    def execute(cls, instruction: str, classifier: str, decision_rule: str, clip: object = None) -> io.NodeOutput:
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
