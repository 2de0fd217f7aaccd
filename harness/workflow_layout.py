"""The example workflows laid out for a person to read, and the check that they stay so.

``layout_problems(workflow)`` is what tests/common/test_example_workflow_layout.py asserts is empty: no two nodes
overlap (title bars included, at the sizes the frontend renders them, which the layout stores), every node but the
note and reroutes sits inside one group and no other, there is a MarkdownNote, every model file a loader names has
a download entry, links run left to right (except into reroutes), and the canvas opens at a readable zoom with
the note and the first stage in view.

``python -m harness.workflow_layout [--measure]`` re-lays out every example workflow: each node goes to its stage
(a group per stage, left to right), within a stage to the column of its longest path from the stage's inputs, and
in a column below the others in the order of its inputs; ``zone_multi_turn`` gets one row per turn, links between
rows carried by reroutes along the gaps. ``--measure`` first loads each workflow in the real frontend (headless
Chromium on a test server) and stores the size it gives every node.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.example_models import DOWNLOADS, MADE_BY_THE_PACK, add_download_entries, model_files
from harness.ui_workflow import example_workflow_dir, example_workflows

TITLE_HEIGHT = 30  # LiteGraph draws a node's title bar above its pos
GROUP_TITLE = 50  # a group's title bar (font 24) and the space below it
GROUP_PADDING = 24
COLUMN_GAP = 50
NODE_GAP = 24  # between a node's bottom and the next node's title bar
STAGE_GAP = 70
ROW_GAP = 60
REROUTE_SIZE = (75, 26)
NOTE_WIDTH = 440
VIEW = (1280, 720)  # the smallest window the opening view is checked for
# Where the canvas is not covered by the frontend's side bar (left) and its tab bar and banner (top), in screen px.
VIEW_CLEAR = (64, 124)
SCALE_RANGE = (0.75, 1.0)
UNGROUPED = frozenset({"MarkdownNote", "Note", "Reroute"})
STAGE_COLOURS = ("#3f5a73", "#5a4a73", "#3f6b4f", "#73603f")


# --- the check --------------------------------------------------------------------------------------------------


def _xy(value: Any) -> tuple[float, float]:
    if isinstance(value, dict):
        return float(value["0"]), float(value["1"])
    return float(value[0]), float(value[1])


def node_box(node: dict[str, Any]) -> tuple[float, float, float, float]:
    """The rectangle a node covers on the canvas, its title bar included (reroutes have none)."""
    x, y = _xy(node["pos"])
    width, height = _xy(node.get("size") or (200, 100))
    top = y if node.get("type") == "Reroute" else y - TITLE_HEIGHT
    return x, top, x + width, y + height


def group_box(group: dict[str, Any]) -> tuple[float, float, float, float]:
    x, y, width, height = group["bounding"]
    return x, y, x + width, y + height


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _inside(inner: tuple[float, ...], outer: tuple[float, ...]) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


def _label(node: dict[str, Any]) -> str:
    return f"#{node['id']} {node.get('title') or node.get('type')}"


def layout_problems(workflow: dict[str, Any]) -> list[str]:
    """Everything a reader would trip over in this workflow (empty when it reads well)."""
    problems = []
    nodes = [node for node in workflow.get("nodes", []) if not (node.get("flags") or {}).get("collapsed")]
    boxes = {node["id"]: node_box(node) for node in nodes}
    for i, a in enumerate(nodes):
        for b in nodes[i + 1 :]:
            if _overlap(boxes[a["id"]], boxes[b["id"]]):
                problems.append(f"{_label(a)} and {_label(b)} overlap")
    groups = workflow.get("groups") or []
    if not groups:
        problems.append("no group")
    for node in nodes:
        if node.get("type") in UNGROUPED:
            continue
        holding = [g for g in groups if _inside(boxes[node["id"]], group_box(g))]
        touching = [g for g in groups if _overlap(boxes[node["id"]], group_box(g))]
        if len(holding) != 1 or len(touching) != 1:
            names = ", ".join(repr(g.get("title")) for g in touching) or "none"
            problems.append(f"{_label(node)} is not inside exactly one group (it touches {names})")
    for group in groups:
        title_bar = group_box(group)[:3] + (group_box(group)[1] + GROUP_TITLE,)
        for node in nodes:
            if _overlap(boxes[node["id"]], title_bar):
                problems.append(f"{_label(node)} covers the title of group {group.get('title')!r}")
    if not any(node.get("type") == "MarkdownNote" for node in nodes):
        problems.append("no MarkdownNote")
    problems += download_problems(workflow)
    problems += link_problems(workflow)
    problems += view_problems(workflow)
    return problems


def download_problems(workflow: dict[str, Any]) -> list[str]:
    """Model files without the download entry the frontend's missing-models dialog shows."""
    problems = []
    listed = {(m.get("name"), m.get("directory"), m.get("url")) for m in workflow.get("models") or []}
    for node, name, folder in model_files(workflow):
        if name in MADE_BY_THE_PACK:
            continue
        download = DOWNLOADS.get(name)
        if download is None:
            problems.append(f"{_label(node)} names {name!r}, which has no download entry (harness/example_models.py)")
            continue
        entry = (name, folder, download.url)
        if entry not in listed:
            problems.append(f"{name!r} ({folder}) is not in the workflow's top-level models list")
        if download.entry() not in (node.get("properties") or {}).get("models", []):
            problems.append(f"{_label(node)} has no properties.models entry for {name!r}")
    return problems


def link_problems(workflow: dict[str, Any]) -> list[str]:
    """Links that run right to left (a reader's eye follows them backwards), except into a reroute: the reroutes
    between rows carry a link back to the left edge along the gap above the next row."""
    by_id = {node["id"]: node for node in workflow.get("nodes", [])}
    problems = []
    for link in workflow.get("links", []):
        source, target = by_id.get(link[1]), by_id.get(link[3])
        if source is None or target is None:
            continue
        if target.get("type") == "Reroute":
            continue
        if node_box(target)[0] <= node_box(source)[0]:
            problems.append(f"the link {_label(source)} -> {_label(target)} runs right to left")
    return problems


def view_problems(workflow: dict[str, Any]) -> list[str]:
    """The opening view: zoom within SCALE_RANGE, the note and the first node of the first group in view."""
    ds = (workflow.get("extra") or {}).get("ds")
    if not ds:
        return ["no opening view (extra.ds)"]
    scale = float(ds["scale"])
    offset = _xy(ds["offset"])
    problems = []
    if not SCALE_RANGE[0] <= scale <= SCALE_RANGE[1]:
        problems.append(f"opens at {scale:.0%} zoom (readable: {SCALE_RANGE[0]:.0%}-{SCALE_RANGE[1]:.0%})")
    first = [node for node in workflow.get("nodes", []) if node.get("type") == "MarkdownNote"]
    groups = workflow.get("groups") or []
    if groups:
        leftmost = min(groups, key=lambda g: (group_box(g)[0], group_box(g)[1]))
        x, y = leftmost["bounding"][:2]  # a group has no title bar above its bounding
        first.append({"id": "group", "title": leftmost.get("title"), "type": "group", "pos": [x, y + TITLE_HEIGHT]})
    for node in first:
        x, y = _xy(node["pos"])
        screen = ((x + offset[0]) * scale, (y - TITLE_HEIGHT + offset[1]) * scale)
        if not (VIEW_CLEAR[0] <= screen[0] <= VIEW[0] - 100 and VIEW_CLEAR[1] <= screen[1] <= VIEW[1] - 100):
            problems.append(f"{_label(node)} is out of the opening view ({screen[0]:.0f}, {screen[1]:.0f} px)")
    return problems


# --- the layout -------------------------------------------------------------------------------------------------


@dataclass
class Plan:
    """How one workflow is laid out: its stages (group titles, left to right), the stage of each node type (a node
    goes at least to the stage of its inputs), optionally a row per node (``rows``: row titles), and its note."""

    stages: tuple[str, ...]
    stage_of: dict[str, int]
    note: str
    row_of: Callable[[dict[str, Any], dict[int, dict[str, Any]], dict[int, list[int]]], int] | None = None
    rows: tuple[str, ...] = ("",)
    note_height: int = 520
    keep: set[str] = field(default_factory=set)


LOADING = {
    "CheckpointLoaderSimple": 0,
    "unCLIPCheckpointLoader": 0,
    "UNETLoader": 0,
    "PreciseEdit_SAMLoader": 0,
    "PreciseEdit_JointCLIPLoader": 0,
    "PreciseEdit_MCDMLoader": 0,
    "LoadImage": 0,
    "ImageScale": 0,
    "PreciseEdit_ResizeAndPad": 0,
    "PrimitiveStringMultiline": 0,
    "CLIPTextEncode": 0,
    "EmptyLatentImage": 0,
    "EmptyImage": 0,
    "SolidMask": 0,
    "MaskComposite": 0,
    "VAEEncode": 0,
    "CLIPVisionEncode": 0,
}
SAVING = {"SaveImage": 3, "PreviewImage": 3, "MaskToImage": 3, "PreciseEdit_UnPad": 3}
SAMPLING = {
    "KSampler": 2,
    "KSamplerSelect": 2,
    "BasicScheduler": 2,
    "RandomNoise": 2,
    "SamplerCustomAdvanced": 2,
    "VAEDecode": 2,
}


def _turn_of(node: dict[str, Any], by_id: dict[int, dict[str, Any]], inputs: dict[int, list[int]]) -> int:
    """The highest 'Instruction N' among a node's ancestors (itself included), 0 for none."""
    seen, stack, turn = set(), [node["id"]], 0
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        title = by_id[current].get("title") or ""
        if by_id[current].get("type") == "PrimitiveStringMultiline" and title.startswith("Instruction "):
            turn = max(turn, int(title.split()[-1]))
        stack.extend(inputs.get(current, []))
    return max(turn - 1, 0)


ZONE_STAGES = ("Load and prepare", "Edit (InstructPix2Pix)", "Locate the edit", "Composite and save")
ZONE_TYPES = {
    **LOADING,
    "PreciseEdit_ActionClassifier": 0,
    "PreciseEdit_InstructionLocator": 1,
    "PreciseEdit_FusedInstructGuider": 1,
    "InstructPixToPixConditioning": 1,
    "KSampler": 1,
    "KSamplerSelect": 1,
    "BasicScheduler": 1,
    "RandomNoise": 1,
    "SamplerCustomAdvanced": 1,
    "VAEDecode": 1,
    "PreciseEdit_EditRegionFromAttention": 2,
    "PreciseEdit_DifferenceLocator": 2,
    "PreciseEdit_ImageToSegment": 2,
    "PreciseEdit_SAMSegmentEverything": 2,
    "PreciseEdit_RegionIoUSelect": 2,
    "ImageBatch": 2,
    "ImageToMask": 2,
    "PreciseEdit_FFTEdgeSmoother": 3,
    **SAVING,
}
ZONE_MODELS = (
    "**Models** (the missing-models dialog offers them):\n"
    "- `instruct-pix2pix-00-22000.safetensors` → `models/checkpoints` "
    "([timbrooks/instruct-pix2pix](https://huggingface.co/timbrooks/instruct-pix2pix))\n"
    "- `MagicBrush-epoch-52-step-4999.ckpt` → `models/diffusion_models` "
    "([osunlp/InstructPix2Pix-MagicBrush](https://huggingface.co/osunlp/InstructPix2Pix-MagicBrush))\n"
    "- `sam_vit_h_4b8939.pth` → `models/sams` (Segment Anything ViT-H, "
    "[HCMUE-Research/SAM-vit-h](https://huggingface.co/HCMUE-Research/SAM-vit-h) or Meta's "
    "dl.fbaipublicfiles.com/segment_anything/)\n"
)
SD15 = (
    "- `v1-5-pruned-emaonly-fp16.safetensors` → `models/checkpoints` "
    "([Comfy-Org/stable-diffusion-v1-5-archive](https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive))\n"
)
CLASSIFIER = (
    "The Action Classifier uses its keyword rules (95 % on the pack's 600 labelled instructions), so the workflow "
    "loads without extra files; for ZONE's learned classifier put the released `ckpts/action_classifier.pth` in "
    "`models/action_classifiers` and choose it in `classifier`."
)

DIT_ZONE_TYPES = {
    **ZONE_TYPES,
    "CLIPLoader": 0,
    "DualCLIPLoader": 0,
    "VAELoader": 0,
    "FluxKontextImageScale": 0,
    "ModelSamplingAuraFlow": 0,
    "CFGNorm": 0,
    "CLIPTextEncode": 1,
    "TextEncodeQwenImageEditPlus": 1,
    "ReferenceLatent": 1,
    "FluxGuidance": 1,
    "ConditioningZeroOut": 1,
    "KSampler": 1,
}


def _model_lines(names: Iterable[str]) -> str:
    """The note's list of model files: where each goes and its download link."""
    return "".join(
        f"- `{name}` → `models/{DOWNLOADS[name].directory}` ([{DOWNLOADS[name].what}]({DOWNLOADS[name].url}))\n"
        for name in names
    )


def _dit_zone_note(model: str, template: str, stand_in: str, files: Iterable[str]) -> str:
    """The note of a ZONE workflow on an instruction DiT: what each stage does, the files, how it was checked."""
    return (
        f"## ZONE on {model}\n"
        f"{model} edits the whole image with the settings of ComfyUI's official template ({template}) while "
        "Instruction Locator records, in every joint-attention block and step of the positive prompt, how much the "
        "target image's tokens attend to the instruction's tokens (ZONE's end map) and to the rest of the text "
        "(its start map). Edit Region From Attention turns them into the rough region, Region-IoU Select snaps it "
        "to the best SAM segment (of the original for 'remove', of the edit otherwise, as the Action Classifier "
        "decides), and FFT Edge Smoother pastes only that segment back: every pixel outside its mask is the "
        "original's. Flux Kontext Image Scale sizes the photo as the template does; the composite has that size.\n\n"
        "**Models** (the missing-models dialog offers them):\n"
        + _model_lines(files)
        + _model_lines(["sam_vit_h_4b8939.pth"])
        + "\n**How this example was checked:** it passes ComfyUI's prompt validation (0.3.75 and 0.33) but was "
        "not executed on these weights here: they are too big for the pack's CPU tests. "
        "`tests/zone/test_dit_locator.py` runs the same chain (Instruction Locator → KSampler → Edit Region From "
        f"Attention → Region-IoU Select → FFT Edge Smoother) on a tiny {stand_in} stand-in built with ComfyUI's own "
        "classes, with a reference image of another size and four drawn segments in place of SAM's: the recorded "
        "maps equal the attention computed directly on the target image's tokens only (the reference's never "
        "count), M_b is the region the instruction attended, and every pixel outside the final mask is the "
        "original's.\n\n"
        "**Change first:**\n"
        "1. the photo (Load Image) and the **Instruction** text (the prompt and the locator read the same text);\n"
        "2. `threshold` / `rule` on Edit Region From Attention (a larger or smaller rough region);\n"
        "3. the segmenter's settings on SAM Segment Everything."
    )


PLANS: dict[str, Plan] = {
    "attention_mask_demo": Plan(
        ("Load and prompt", "Confine and capture a word", "Sample", "Maps and save"),
        {
            **LOADING,
            "PreciseEdit_AttentionMaskInjector": 1,
            "PreciseEdit_CaptureCrossAttention": 1,
            **SAMPLING,
            "PreciseEdit_AttentionToMask": 3,
            **SAVING,
        },
        "## Attention mask demo\n"
        "Attention Mask Injector confines the word **cat** to the left half of the image (S2Edit's spatial control, "
        "A*[I] = A[I] ⊙ M); Capture Cross-Attention records where **cat** and **hat** attended while KSampler runs, "
        "and Attention To Mask turns that into masks and heat maps (cat: left half only).\n\n"
        "**Models:**\n" + SD15 + "\n"
        "**Change first:**\n"
        "1. the **Prompt** node's text (both text encoders and the two attention nodes read it);\n"
        "2. `words` on Attention Mask Injector (the words to confine) and on Capture Cross-Attention (the words to "
        "map);\n"
        "3. the **Left half** mask: its width, or any mask you draw or load, for where the word may appear.",
    ),
    "deltaedit_unclip": Plan(
        ("Load", "Learn the mapper, find the direction", "Edit the embedding and sample", "Save"),
        {
            **LOADING,
            "PreciseEdit_DeltaMapperTrainer": 1,
            "PreciseEdit_CLIPDeltaDirection": 1,
            "PreciseEdit_ApplyDeltaEdit": 2,
            "unCLIPConditioning": 2,
            **SAMPLING,
            "ImageBatch": 3,
            **SAVING,
        },
        "## DeltaEdit on SD2.1 unCLIP-L\n"
        "Delta Mapper Trainer learns, from images only, how the unCLIP image embedding changes between two images "
        "given their CLIP difference. CLIP Delta Direction turns 'face' → 'face with smile' into a DeltaSpace "
        "direction, Apply DeltaEdit maps it to a change of the source image's embedding, and unCLIP Conditioning "
        "samples from it; the unedited embedding is sampled with the same seed beside it.\n\n"
        "**Models:**\n"
        "- `sd21-unclip-l.ckpt` → `models/checkpoints` "
        "([stabilityai/stable-diffusion-2-1-unclip](https://huggingface.co/stabilityai/stable-diffusion-2-1-unclip))\n"
        "- `clip-vit-large-patch14.safetensors` → `models/clip_joint`: the unCLIP's own image encoder with its text "
        "tower, published as `model.safetensors` in "
        "[openai/clip-vit-large-patch14](https://huggingface.co/openai/clip-vit-large-patch14); save it under this "
        "name.\n\n"
        "**Change first:**\n"
        "1. the trainer's `folder`: a few thousand images of your domain in `input/deltaedit_faces` (the four "
        "cartoon faces there only make the graph run); training saves to `models/delta_mappers`, afterwards "
        "replace the trainer by Delta Mapper Loader;\n"
        "2. the two texts of CLIP Delta Direction (source → target);\n"
        "3. Apply DeltaEdit's `strength` (0 = unedited) and `relative_threshold` (higher leaves more channels "
        "alone; the node shows how many it changed).",
    ),
    "mcdm_edit": Plan(
        ("Load", "Locate: the edit mask", "Edit (MCDM guidance)", "Save"),
        {
            **LOADING,
            "PreciseEdit_MCDMEditMask": 1,
            "PreciseEdit_MCDMGuider": 2,
            **SAMPLING,
            **SAVING,
        },
        "## MCDM portrait editing\n"
        "The multi-conditioned diffusion model edits a portrait while keeping the person: MCDM Edit Mask finds where "
        "the target prompt changes the image (DiffEdit on MCDM), MCDM Guider samples with the image embedding, the "
        "source latent and the text, each with its own scale, and the mask limits the change.\n\n"
        "**Models:**\n" + SD15 + "- `clip-vit-base-patch32.safetensors` → `models/clip_joint` (OpenAI CLIP "
        "ViT-B/32, published as `model.safetensors` in "
        "[openai/clip-vit-base-patch32](https://huggingface.co/openai/clip-vit-base-patch32); save it under this "
        "name)\n"
        "- `mcdm-outfit.safetensors` → `models/mcdm`: written by **MCDM Trainer** from pairs that "
        "`mcdm_make_pairs` generates; or download the official outfit release (`unet.pth` + `adapter.pth`) from "
        "[ByteDance/feature-preserve-portrait-editing](https://huggingface.co/ByteDance/feature-preserve-portrait-"
        "editing) into `models/mcdm/outfit/` and pick `outfit/` in MCDM Loader.\n\n"
        "**Change first:**\n"
        "1. the portrait (Load Image) and the target prompt ('a man, santa claus costume');\n"
        "2. the source prompt ('a man'), which must describe the photo;\n"
        "3. the three guidance scales (image, source, text) on MCDM Guider.",
    ),
    "mcdm_make_pairs": Plan(
        ("Load and prompts", "Generate the pair canvas", "Split and write the pair"),
        {
            **LOADING,
            "PreciseEdit_PairedCanvasGuider": 1,
            "KSampler": 1,
            "KSamplerSelect": 1,
            "BasicScheduler": 1,
            "RandomNoise": 1,
            "SamplerCustomAdvanced": 1,
            "VAEDecode": 1,
            "PreciseEdit_PairedDataGenerator": 2,
            "SaveImage": 2,
            "PreviewImage": 2,
        },
        "## MCDM paired data (paper §3.2, eq. 2)\n"
        "One latent twice as wide as a pair image: the Paired Canvas Guider denoises the left half towards the "
        "source prompt and the right half towards the target prompt, both under the shared prompt, in one run, so "
        "the two people match. Paired Data Generator splits the decoded canvas and appends x_A / x_B to "
        "`output/mcdm_pairs/santa` (condition/, gt/, prompt.json) for MCDM Trainer.\n\n"
        "**Models:**\n" + SD15 + "\n"
        "**Change first:**\n"
        "1. the shared, source and target prompts;\n"
        "2. the seed (or a batch) for more pairs, and the output folder;\n"
        "3. for identity and pose as in the paper: identity embeddings or IP-Adapter on the model, and Apply "
        "ControlNet (the same pose drawn twice side by side) on the shared conditioning.",
    ),
    "s2edit_identity_edit": Plan(
        ("Load", "Learn the identity, invert", "Edit (prompt-to-prompt)", "Save"),
        {
            **LOADING,
            "PreciseEdit_OrthogonalityLoss": 1,
            "PreciseEdit_SpatialControl": 1,
            "PreciseEdit_IdentityTokenTrainer": 1,
            "PreciseEdit_IdentityPrompt": 1,
            "PreciseEdit_NullTextInversion": 1,
            "PreviewImage": 1,
            "PreciseEdit_PromptToPromptEdit": 2,
            "VAEDecode": 2,
            "SaveImage": 3,
        },
        "## S2Edit: edit a photo, keep the identity\n"
        "Identity Token Trainer learns the token [I] of 'a photo of a [I] cat' from the one photo (orthogonality "
        "loss: [I] learns only what the prompt does not say; spatial control: only inside the cat's mask). "
        "Null-Text Inversion finds the noise and null-text embeddings that give the photo back, and Prompt-to-"
        "Prompt Edit replays them with the edited prompt, so everything but the edit stays.\n\n"
        "**Models:**\n" + SD15 + "\n"
        "**Change first:**\n"
        "1. the photo (Load Image) and the trainer's prompt with [I] and its class word ('cat');\n"
        "2. the target prompt on Prompt-to-Prompt Edit ('… wearing sunglasses') and its `word_weights`;\n"
        "3. the trainer's `steps` (400; fewer to try, more for a face).",
    ),
    "s2edit_compositional": Plan(
        ("Load", "Learn the identity and the attribute, invert", "Edit (prompt-to-prompt)", "Save"),
        {},
        "## S2Edit: compose an identity with an attribute\n"
        "Identity Token Trainer learns [I] from the source photo and [A] ('stripes') from the reference image in one "
        "run; Null-Text Inversion inverts the source, and Prompt-to-Prompt Edit replays it with 'a photo of a [I] "
        "cat with [A] stripes', so the cat keeps its identity and takes the reference's attribute.\n\n"
        "**Models:**\n" + SD15 + "\n"
        "**Change first:**\n"
        "1. the two images: the source (the identity) and the reference (the attribute);\n"
        "2. the trainer's second prompt and word for [A] ('a photo of a cat with [A] stripes', 'stripes');\n"
        "3. the target prompt and `word_weights` on Prompt-to-Prompt Edit.",
    ),
    "zone_local_edit": Plan(
        ZONE_STAGES,
        ZONE_TYPES,
        "## ZONE: a local edit from one instruction\n"
        "Fused Instruct Guider edits the whole image (InstructPix2Pix blended with MagicBrush by β, which the Action "
        "Classifier sets: 0.2 for 'remove', 0.01 otherwise) while Instruction Locator records its attention. Edit "
        "Region From Attention turns that into the rough region, Region-IoU Select snaps it to the best SAM segment "
        "(of the original for 'remove', of the edit otherwise), and FFT Edge Smoother pastes only that segment "
        "back: every pixel outside its mask is the original's. Resize And Pad / Un-Pad keep the photo uncropped.\n\n"
        + ZONE_MODELS
        + "\n**Change first:**\n"
        "1. the photo (Load Image) and the **Instruction 1** text;\n"
        "2. `threshold` on Edit Region From Attention (a larger or smaller rough region);\n"
        "3. the guidance scales on Fused Instruct Guider (text, image).\n\n" + CLASSIFIER,
    ),
    "zone_multi_turn": Plan(
        ZONE_STAGES,
        ZONE_TYPES,
        "## ZONE: three instructions in a row\n"
        "Each row is one turn: it edits the previous turn's composite with one instruction, locates the edit in "
        "InstructPix2Pix's attention, snaps it to a SAM segment and pastes only that segment back, so every pixel "
        "outside the three turns' masks is the original's. The Action Classifier gives each turn its β and the "
        "image SAM segments. Reroutes carry the models and each turn's result down the left edge to the next "
        "row.\n\n" + ZONE_MODELS + "\n**Change first:**\n"
        "1. the photo (Load Image) and the **Instruction 1/2/3** texts;\n"
        "2. `threshold` on each turn's Edit Region From Attention;\n"
        "3. the guidance scales on each turn's Fused Instruct Guider.\n\n" + CLASSIFIER,
        row_of=_turn_of,
        rows=("Turn 1", "Turn 2", "Turn 3"),
        note_height=640,
    ),
    "zone_difference_compositing": Plan(
        ("Load and draw the test picture", "Edit (InstructPix2Pix)", "Locate the edit", "Composite and save"),
        {**ZONE_TYPES, "ImageCompositeMasked": 0, "MaskToImage": 2},
        "## ZONE compositing around any editor\n"
        "InstructPix2Pix edits the whole image; Difference Locator finds where it changed, Region-IoU Select snaps "
        "that region to the best matching segment, and FFT Edge Smoother pastes only that segment back with a "
        "smooth edge: every pixel outside its mask is the original's. The three SolidMask segments (a box, the left "
        "half, the top half) stand in for a segmenter: connect SAM's masks (a MASK batch or Impact Pack SEGS) to "
        "`segments` / `segs` instead. Any editor's output can replace the KSampler / VAE Decode pair.\n\n"
        "**Models:**\n"
        "- `instruct-pix2pix-00-22000.safetensors` → `models/checkpoints` "
        "([timbrooks/instruct-pix2pix](https://huggingface.co/timbrooks/instruct-pix2pix))\n\n"
        "**Change first:**\n"
        "1. the picture: replace the two Empty Image / Image Composite nodes by Load Image;\n"
        "2. the instruction (the first text encoder);\n"
        "3. `threshold` and `blur` on Difference Locator.",
    ),
    "zone_qwen_image_edit": Plan(
        ("Load and prepare", "Edit (Qwen-Image-Edit)", "Locate the edit", "Composite and save"),
        DIT_ZONE_TYPES,
        _dit_zone_note(
            "Qwen-Image-Edit 2509",
            "20 steps, cfg 4, euler, simple, AuraFlow shift 3, CFGNorm; its optional 4-step Lightning LoRA is left out",
            "Qwen-Image",
            (
                "qwen_image_edit_2509_fp8_e4m3fn.safetensors",
                "qwen_2.5_vl_7b_fp8_scaled.safetensors",
                "qwen_image_vae.safetensors",
            ),
        ),
        note_height=760,
    ),
    "zone_flux_kontext": Plan(
        ("Load and prepare", "Edit (Flux Kontext)", "Locate the edit", "Composite and save"),
        DIT_ZONE_TYPES,
        _dit_zone_note(
            "Flux.1 Kontext dev",
            "20 steps, cfg 1, Flux guidance 2.5, euler, simple; the photo as reference latent",
            "Flux",
            (
                "flux1-dev-kontext_fp8_scaled.safetensors",
                "clip_l.safetensors",
                "t5xxl_fp8_e4m3fn_scaled.safetensors",
                "ae.safetensors",
            ),
        ),
        note_height=760,
    ),
}
PLANS["s2edit_compositional"].stage_of = PLANS["s2edit_identity_edit"].stage_of


def _graph(workflow: dict[str, Any]) -> tuple[dict[int, dict[str, Any]], dict[int, list[int]], dict[int, list[int]]]:
    by_id = {node["id"]: node for node in workflow["nodes"]}
    inputs: dict[int, list[int]] = {node_id: [] for node_id in by_id}
    outputs: dict[int, list[int]] = {node_id: [] for node_id in by_id}
    for link in workflow["links"]:
        if link[1] in by_id and link[3] in by_id:
            inputs[link[3]].append(link[1])
            outputs[link[1]].append(link[3])
    return by_id, inputs, outputs


def _topological(by_id: dict[int, dict[str, Any]], inputs: dict[int, list[int]]) -> list[int]:
    order, seen = [], set()

    def visit(node_id: int) -> None:
        if node_id in seen:
            return
        seen.add(node_id)
        for source in inputs[node_id]:
            visit(source)
        order.append(node_id)

    for node_id in sorted(by_id):
        visit(node_id)
    return order


def _strip_layout(workflow: dict[str, Any]) -> None:
    """Drop the reroutes an earlier layout added (their links joined again) and the note (the plan writes it)."""
    by_id = {node["id"]: node for node in workflow["nodes"]}
    reroutes = {node_id for node_id, node in by_id.items() if node["type"] == "Reroute"}
    links = {link[0]: link for link in workflow["links"]}
    for link in list(links.values()):
        if link[3] in reroutes or link[1] not in reroutes:
            continue
        origin = link
        while origin[1] in reroutes:
            origin = next(other for other in links.values() if other[3] == origin[1])
        link[1], link[2] = origin[1], origin[2]
        source_output = by_id[origin[1]]["outputs"][origin[2]]
        source_output["links"] = sorted(set(source_output.get("links") or []) | {link[0]})
    dropped = {link[0] for link in links.values() if link[1] in reroutes or link[3] in reroutes}
    for node in workflow["nodes"]:
        for output in node.get("outputs") or []:
            if output.get("links"):
                output["links"] = [link for link in output["links"] if link not in dropped]
    workflow["links"] = [link for link in links.values() if link[0] not in dropped]
    workflow["nodes"] = [node for node in workflow["nodes"] if node["type"] not in ("Reroute", "MarkdownNote", "Note")]


def _size(node: dict[str, Any], measured: dict[int, list[float]]) -> tuple[float, float]:
    width, height = _xy(node.get("size") or (200, 100))
    if node["id"] in measured:
        width, height = max(width, measured[node["id"]][0]), max(height, measured[node["id"]][1])
    return float(round(width)), float(round(height))


def lay_out(workflow: dict[str, Any], plan: Plan, measured: dict[int, list[float]]) -> dict[str, Any]:
    """The workflow with its nodes placed, grouped, noted, with download entries and an opening view."""
    _strip_layout(workflow)
    by_id, inputs, outputs = _graph(workflow)
    for node in workflow["nodes"]:
        node["size"] = list(_size(node, measured))
    order = _topological(by_id, inputs)
    stage: dict[int, int] = {}
    row: dict[int, int] = {}
    for node_id in order:
        row[node_id] = plan.row_of(by_id[node_id], by_id, inputs) if plan.row_of else 0
        own = plan.stage_of.get(by_id[node_id]["type"], 0)
        stage[node_id] = max([own, *(stage[s] for s in inputs[node_id] if row[s] == row[node_id])])
    column: dict[int, int] = {}
    for node_id in order:
        same = [s for s in inputs[node_id] if stage[s] == stage[node_id] and row[s] == row[node_id]]
        column[node_id] = max((column[s] + 1 for s in same), default=0)
    # Pull a node with no inputs in its stage next to its first consumer (a scheduler beside its sampler).
    for node_id in reversed(order):
        consumers = [t for t in outputs[node_id] if stage[t] == stage[node_id] and row[t] == row[node_id]]
        if not any(stage[s] == stage[node_id] and row[s] == row[node_id] for s in inputs[node_id]) and consumers:
            column[node_id] = max(column[node_id], min(column[t] for t in consumers) - 1)

    note = {
        "id": max(by_id) + 1,
        "type": "MarkdownNote",
        "pos": [0, TITLE_HEIGHT],
        "size": [NOTE_WIDTH, plan.note_height],
        "flags": {},
        "order": len(workflow["nodes"]),
        "mode": 0,
        "inputs": [],
        "outputs": [],
        "title": "Read me",
        "properties": {},
        "widgets_values": [plan.note],
        "color": "#432",
        "bgcolor": "#653",
    }
    left = NOTE_WIDTH + STAGE_GAP
    rows = sorted(set(row.values()))
    groups = []
    y_top = 0.0
    placed_y: dict[int, float] = {}
    row_tops: dict[int, float] = {}
    row_lefts: dict[int, float] = {}
    band_reroutes = _reroute_plan(workflow, by_id, row, rows)
    for r in rows:
        y_top += band_reroutes.band_height(r)
        row_tops[r] = y_top
        x = left + (band_reroutes.margin if band_reroutes.pairs else 0)
        row_lefts[r] = x
        row_bottom = y_top
        for s in sorted({stage[n] for n in row if row[n] == r}):
            members = [n for n in order if stage[n] == s and row[n] == r]
            columns = sorted({column[n] for n in members})
            group_x = x
            x += GROUP_PADDING
            stage_bottom = y_top + GROUP_TITLE
            for c in columns:
                in_column = [n for n in members if column[n] == c]

                def barycentre(n: int) -> float:
                    ys = [placed_y[s] for s in inputs[n] if s in placed_y]
                    return sum(ys) / len(ys) if ys else float(n)

                in_column.sort(key=lambda n: (barycentre(n), n))
                width = max(by_id[n]["size"][0] for n in in_column)
                y = y_top + GROUP_TITLE
                for n in in_column:
                    by_id[n]["pos"] = [x, y + TITLE_HEIGHT]
                    placed_y[n] = y
                    y += TITLE_HEIGHT + by_id[n]["size"][1] + NODE_GAP
                stage_bottom = max(stage_bottom, y - NODE_GAP)
                x += width + COLUMN_GAP
            x += GROUP_PADDING - COLUMN_GAP
            title = plan.stages[s] if len(rows) == 1 else f"{plan.rows[r]} · {plan.stages[s]}"
            groups.append(
                {
                    "title": f"{s + 1}. {title}",
                    "bounding": [group_x, y_top, x - group_x, stage_bottom + GROUP_PADDING - y_top],
                    "color": STAGE_COLOURS[s % len(STAGE_COLOURS)],
                    "font_size": 24,
                    "flags": {},
                }
            )
            row_bottom = max(row_bottom, stage_bottom + GROUP_PADDING)
            x += STAGE_GAP
        y_top = row_bottom + ROW_GAP
    band_reroutes.place(workflow, by_id, row_tops, row_lefts)
    workflow["nodes"].append(note)
    workflow["groups"] = groups
    workflow["last_node_id"] = max(node["id"] for node in workflow["nodes"])
    workflow["last_link_id"] = max((link[0] for link in workflow["links"]), default=0)
    add_download_entries(workflow)
    scale = 0.85
    offset = [round((VIEW_CLEAR[0] + 16) / scale), round((VIEW_CLEAR[1] + 16) / scale)]
    workflow.setdefault("extra", {})["ds"] = {"scale": scale, "offset": offset}
    return workflow


@dataclass
class _Reroutes:
    """Reroutes for links between rows: per source output a chain down the left margin, one reroute per row it
    reaches, placed in the gap above that row, so no link crosses a row's nodes."""

    pairs: dict[tuple[int, int], list[tuple[int, int]]]  # (source id, slot) -> [(link id, target row)]
    rows: list[int]
    margin: float = 2 * REROUTE_SIZE[0] + 40

    def band_height(self, r: int) -> float:
        count = sum(1 for targets in self.pairs.values() if any(t >= r for _, t in targets) and r > 0)
        return count * (REROUTE_SIZE[1] + 12)

    def place(
        self,
        workflow: dict[str, Any],
        by_id: dict[int, dict[str, Any]],
        row_tops: dict[int, float],
        row_lefts: dict[int, float],
    ) -> None:
        next_node = max(by_id) + 2
        next_link = max((link[0] for link in workflow["links"]), default=0) + 1
        links = {link[0]: link for link in workflow["links"]}
        slot_in_band: dict[int, int] = {}
        for (source, slot), targets in sorted(self.pairs.items()):
            source_type = by_id[source]["outputs"][slot]["type"]
            upstream = (source, slot)
            for r in sorted({t for _, t in targets}):
                index = slot_in_band.get(r, 0)
                slot_in_band[r] = index + 1
                band_top = row_tops[r] - self.band_height(r)
                reroute_id = next_node
                next_node += 1
                x = row_lefts[r] - self.margin + 20 + (index % 2) * (REROUTE_SIZE[0] + 10)
                reroute = {
                    "id": reroute_id,
                    "type": "Reroute",
                    "pos": [x, band_top + index * (REROUTE_SIZE[1] + 12)],
                    "size": list(REROUTE_SIZE),
                    "flags": {},
                    "order": 0,
                    "mode": 0,
                    "inputs": [{"name": "", "type": "*", "link": next_link}],
                    "outputs": [{"name": "", "type": source_type, "links": [], "slot_index": 0}],
                    "properties": {"showOutputText": False, "horizontal": False},
                }
                workflow["nodes"].append(reroute)
                by_id[reroute_id] = reroute
                links[next_link] = [next_link, upstream[0], upstream[1], reroute_id, 0, source_type]
                by_id[upstream[0]]["outputs"][upstream[1]].setdefault("links", [])
                by_id[upstream[0]]["outputs"][upstream[1]]["links"] = sorted(
                    set(by_id[upstream[0]]["outputs"][upstream[1]]["links"] or []) | {next_link}
                )
                next_link += 1
                for link_id, target_row in targets:
                    if target_row != r:
                        continue
                    link = links[link_id]
                    old_outputs = by_id[link[1]]["outputs"][link[2]]
                    old_outputs["links"] = [other for other in old_outputs["links"] if other != link_id]
                    link[1], link[2] = reroute_id, 0
                    reroute["outputs"][0]["links"].append(link_id)
                upstream = (reroute_id, 0)
        workflow["links"] = sorted(links.values())


def _reroute_plan(
    workflow: dict[str, Any], by_id: dict[int, dict[str, Any]], row: dict[int, int], rows: list[int]
) -> _Reroutes:
    pairs: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for link in workflow["links"]:
        if row[link[3]] > row[link[1]]:
            pairs.setdefault((link[1], link[2]), []).append((link[0], row[link[3]]))
    return _Reroutes(pairs, rows)


# --- sizes from the real frontend -------------------------------------------------------------------------------


MEASURE = """async (workflow) => {
    await app.loadGraphData(workflow, true, true, 'measure.json');
    await new Promise((resolve) => setTimeout(resolve, 1500));
    return Object.fromEntries(app.graph.nodes.map((n) => [n.id, [n.size[0], n.size[1]]]));
}"""


def measure_sizes(paths: Iterable[Path]) -> dict[str, dict[int, list[float]]]:
    """Each workflow's node sizes as the frontend renders them (headless Chromium, a test server)."""
    from playwright.sync_api import sync_playwright

    from harness.server import ComfyServer
    from harness.tiny_models import ensure_models

    sizes = {}
    with tempfile.TemporaryDirectory(prefix="precise-edit-layout-") as tmp:
        models = Path(tmp) / "models"
        ensure_models(models)
        with ComfyServer(Path(tmp) / "comfy", models) as server, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(server.url)
            page.wait_for_function("() => window.app?.graph", timeout=120_000)
            for path in paths:
                measured = page.evaluate(MEASURE, json.loads(path.read_text()))
                sizes[path.stem] = {int(key): value for key, value in measured.items()}
            browser.close()
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--measure", action="store_true", help="measure node sizes in the real frontend first")
    parser.add_argument("--check", action="store_true", help="only print the layout problems")
    args = parser.parse_args(argv)
    paths = example_workflows()
    if not args.check:
        sizes = measure_sizes(paths) if args.measure else {}
        for path in paths:
            plan = PLANS.get(path.stem)
            if plan is None:
                print(f"{path.name}: no layout plan, left as it is")
                continue
            workflow = lay_out(json.loads(path.read_text()), plan, sizes.get(path.stem, {}))
            path.write_text(json.dumps(workflow, indent=1, ensure_ascii=False) + "\n")
    count = 0
    for path in paths:
        for problem in layout_problems(json.loads(path.read_text())):
            print(f"{path.name}: {problem}")
            count += 1
    print(f"{len(paths)} workflows in {example_workflow_dir().name}/, {count} layout problems")
    return 1 if count else 0


if __name__ == "__main__":
    raise SystemExit(main())
