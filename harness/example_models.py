"""The model files the example workflows name, and where a user downloads each one.

The frontend's missing-models dialog reads ``{name, url, directory}`` entries from a loader node's
``properties.models`` (those whose ``name`` is one of the node's widget values) and from the workflow's top-level
``models`` list (comfyui_frontend_package 1.32.9 ``app.loadGraphData`` / ``getSelectedModelsMetadata``; 1.49.6
``collectEmbeddedModels``), checks ``directory`` against ComfyUI's model folders and offers the download. Every file
here is the one its publisher put on Hugging Face, under the name it is published with, except the two joint CLIPs:
transformers publishes them as ``model.safetensors``, which the workflows name after their repository so that both
fit in ``models/clip_joint``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The loaders whose first widget names a model file, with the model folder it is listed from.
MODEL_FILE_LOADERS: dict[str, str] = {
    "CheckpointLoaderSimple": "checkpoints",
    "unCLIPCheckpointLoader": "checkpoints",
    "UNETLoader": "diffusion_models",
    "PreciseEdit_SAMLoader": "sams",
    "PreciseEdit_JointCLIPLoader": "clip_joint",
    "PreciseEdit_MCDMLoader": "mcdm",
}


@dataclass(frozen=True)
class ModelDownload:
    name: str
    directory: str
    url: str
    what: str

    def entry(self) -> dict[str, str]:
        """The entry the frontend's missing-models dialog reads."""
        return {"name": self.name, "url": self.url, "directory": self.directory}


HF = "https://huggingface.co"
DOWNLOADS: dict[str, ModelDownload] = {
    download.name: download
    for download in (
        ModelDownload(
            "v1-5-pruned-emaonly-fp16.safetensors",
            "checkpoints",
            f"{HF}/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/v1-5-pruned-emaonly-fp16.safetensors",
            "Stable Diffusion 1.5 (2.1 GB)",
        ),
        ModelDownload(
            "instruct-pix2pix-00-22000.safetensors",
            "checkpoints",
            f"{HF}/timbrooks/instruct-pix2pix/resolve/main/instruct-pix2pix-00-22000.safetensors",
            "InstructPix2Pix (7.7 GB)",
        ),
        ModelDownload(
            "MagicBrush-epoch-52-step-4999.ckpt",
            "diffusion_models",
            f"{HF}/osunlp/InstructPix2Pix-MagicBrush/resolve/main/MagicBrush-epoch-52-step-4999.ckpt",
            "MagicBrush, InstructPix2Pix fine-tuned on MagicBrush (7.7 GB)",
        ),
        ModelDownload(
            "sam_vit_h_4b8939.pth",
            "sams",
            f"{HF}/HCMUE-Research/SAM-vit-h/resolve/main/sam_vit_h_4b8939.pth",
            "Segment Anything ViT-H (2.6 GB; also at dl.fbaipublicfiles.com/segment_anything/)",
        ),
        ModelDownload(
            "sd21-unclip-l.ckpt",
            "checkpoints",
            f"{HF}/stabilityai/stable-diffusion-2-1-unclip/resolve/main/sd21-unclip-l.ckpt",
            "Stable Diffusion 2.1 unCLIP-L (6 GB)",
        ),
        ModelDownload(
            "clip-vit-large-patch14.safetensors",
            "clip_joint",
            f"{HF}/openai/clip-vit-large-patch14/resolve/main/model.safetensors",
            "OpenAI CLIP ViT-L/14, both towers (1.7 GB; published as model.safetensors: save it under this name)",
        ),
        ModelDownload(
            "clip-vit-base-patch32.safetensors",
            "clip_joint",
            f"{HF}/openai/clip-vit-base-patch32/resolve/main/model.safetensors",
            "OpenAI CLIP ViT-B/32, both towers (0.6 GB; published as model.safetensors: save it under this name)",
        ),
    )
}

# Files a workflow names that no one publishes: the pack's own trainers write them (the workflow's note says how).
MADE_BY_THE_PACK: dict[str, str] = {
    "mcdm-outfit.safetensors": "MCDM Trainer",
}


def model_files(workflow: dict[str, Any]) -> list[tuple[dict[str, Any], str, str]]:
    """``(node, file name, model folder)`` for every loader node of the workflow that names a model file."""
    found = []
    for node in workflow.get("nodes", []):
        folder = MODEL_FILE_LOADERS.get(node.get("type", ""))
        values = node.get("widgets_values")
        if folder and isinstance(values, list) and values and isinstance(values[0], str):
            found.append((node, values[0], folder))
    return found


def add_download_entries(workflow: dict[str, Any]) -> None:
    """Put each named file's download entry on its loader node (``properties.models``) and in the workflow's
    top-level ``models`` list, replacing the entries there."""
    entries: dict[str, dict[str, str]] = {}
    for node, name, _ in model_files(workflow):
        properties = node.setdefault("properties", {})
        download = DOWNLOADS.get(name)
        if download is None:
            properties.pop("models", None)
            continue
        properties["models"] = [download.entry()]
        entries[name] = download.entry()
    if entries:
        workflow["models"] = list(entries.values())
    else:
        workflow.pop("models", None)
