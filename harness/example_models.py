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
from pathlib import Path
from typing import Any

# The loaders whose first widget names a model file, with the model folder it is listed from.
MODEL_FILE_LOADERS: dict[str, str] = {
    "CheckpointLoaderSimple": "checkpoints",
    "unCLIPCheckpointLoader": "checkpoints",
    "UNETLoader": "diffusion_models",
    "PreciseEdit_SAMLoader": "sams",
    "PreciseEdit_JointCLIPLoader": "clip_joint",
    "PreciseEdit_MCDMLoader": "mcdm",
    "CLIPLoader": "text_encoders",
    "DualCLIPLoader": "text_encoders",
    "VAELoader": "vae",
}
# Loaders that name more than one file: how many of their first widgets do.
MODEL_FILE_WIDGETS: dict[str, int] = {"DualCLIPLoader": 2}


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
        ModelDownload(
            "qwen_image_edit_2509_fp8_e4m3fn.safetensors",
            "diffusion_models",
            f"{HF}/Comfy-Org/Qwen-Image-Edit_ComfyUI/resolve/main/split_files/diffusion_models/"
            "qwen_image_edit_2509_fp8_e4m3fn.safetensors",
            "Qwen-Image-Edit 2509, fp8",
        ),
        ModelDownload(
            "qwen_2.5_vl_7b_fp8_scaled.safetensors",
            "text_encoders",
            f"{HF}/Comfy-Org/Qwen-Image_ComfyUI/resolve/main/split_files/text_encoders/"
            "qwen_2.5_vl_7b_fp8_scaled.safetensors",
            "Qwen2.5-VL 7B, Qwen-Image's text encoder, fp8",
        ),
        ModelDownload(
            "qwen_image_vae.safetensors",
            "vae",
            f"{HF}/Comfy-Org/Qwen-Image_ComfyUI/resolve/main/split_files/vae/qwen_image_vae.safetensors",
            "Qwen-Image VAE",
        ),
        ModelDownload(
            "flux1-dev-kontext_fp8_scaled.safetensors",
            "diffusion_models",
            f"{HF}/Comfy-Org/flux1-kontext-dev_ComfyUI/resolve/main/split_files/diffusion_models/"
            "flux1-dev-kontext_fp8_scaled.safetensors",
            "Flux.1 Kontext dev, fp8",
        ),
        ModelDownload(
            "clip_l.safetensors",
            "text_encoders",
            f"{HF}/comfyanonymous/flux_text_encoders/resolve/main/clip_l.safetensors",
            "CLIP-L, Flux's first text encoder",
        ),
        ModelDownload(
            "t5xxl_fp8_e4m3fn_scaled.safetensors",
            "text_encoders",
            f"{HF}/comfyanonymous/flux_text_encoders/resolve/main/t5xxl_fp8_e4m3fn_scaled.safetensors",
            "T5-XXL, Flux's second text encoder, fp8",
        ),
        ModelDownload(
            "ae.safetensors",
            "vae",
            f"{HF}/Comfy-Org/Lumina_Image_2.0_Repackaged/resolve/main/split_files/vae/ae.safetensors",
            "Flux VAE (published in the Lumina Image 2.0 repackage)",
        ),
    )
}

# Published files too big to build as tiny stand-ins (ComfyUI's detection fixes their full widths): the model folders
# the harness serves hold an empty file under each name, so that a prompt naming them passes the server's validation
# (which reads only the folders' file lists); loading one fails. harness/ui_workflow.py's NOT_RUN says which
# workflows they keep from running.
NAME_ONLY: tuple[str, ...] = (
    "qwen_image_edit_2509_fp8_e4m3fn.safetensors",
    "qwen_2.5_vl_7b_fp8_scaled.safetensors",
    "qwen_image_vae.safetensors",
    "flux1-dev-kontext_fp8_scaled.safetensors",
    "clip_l.safetensors",
    "t5xxl_fp8_e4m3fn_scaled.safetensors",
    "ae.safetensors",
)

# Files a workflow names that no one publishes: the pack's own trainers write them (the workflow's note says how).
MADE_BY_THE_PACK: dict[str, str] = {
    "mcdm-outfit.safetensors": "MCDM Trainer",
}


def write_name_only_files(models_dir: Path) -> None:
    """An empty file under each ``NAME_ONLY`` name in its model folder of ``models_dir`` (kept if one is there)."""
    for name in NAME_ONLY:
        path = models_dir / DOWNLOADS[name].directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def model_files(workflow: dict[str, Any]) -> list[tuple[dict[str, Any], str, str]]:
    """``(node, file name, model folder)`` for every model file a loader node of the workflow names."""
    found = []
    for node in workflow.get("nodes", []):
        folder = MODEL_FILE_LOADERS.get(node.get("type", ""))
        values = node.get("widgets_values")
        if not folder or not isinstance(values, list):
            continue
        for value in values[: MODEL_FILE_WIDGETS.get(node["type"], 1)]:
            if isinstance(value, str):
                found.append((node, value, folder))
    return found


def add_download_entries(workflow: dict[str, Any]) -> None:
    """Put each named file's download entry on its loader node (``properties.models``) and in the workflow's
    top-level ``models`` list, replacing the entries there."""
    entries: dict[str, dict[str, str]] = {}
    on_node: dict[int, list[dict[str, str]]] = {}
    for node, name, _ in model_files(workflow):
        properties = node.setdefault("properties", {})
        properties.pop("models", None)
        download = DOWNLOADS.get(name)
        if download is not None:
            on_node.setdefault(node["id"], []).append(download.entry())
            entries[name] = download.entry()
    for node, _, _ in model_files(workflow):
        if node["id"] in on_node:
            node["properties"]["models"] = on_node[node["id"]]
    if entries:
        workflow["models"] = list(entries.values())
    else:
        workflow.pop("models", None)
