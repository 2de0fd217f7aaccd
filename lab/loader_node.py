"""``PreciseEditLab_Loader``: the lab's trained models as ComfyUI's MODEL, CLIP and VAE (lab only, never in the pack).

ComfyUI's model detection does not know models this small, so they load through this node: the UNet, the text
encoder and the cell VAE come from ``.cache/lab/`` (trained there on first use, see ``lab.train``).
"""

from __future__ import annotations

from typing import Any

NODE_ID = "PreciseEditLab_Loader"


def load_lab_models(embedding_directory: str | None = None) -> tuple[Any, Any, Any]:
    """(MODEL, CLIP, VAE) of the lab: trained UNet, random contextual CLIP and cell VAE."""
    import comfy.sd

    from harness.tiny_models import cell_vae
    from lab import train
    from lab.models import text_encoder, unet

    clip = text_encoder.build_clip(train.text_encoder_state(), embedding_directory)
    model = unet.model_patcher(train.unet_state(clip))
    vae = comfy.sd.VAE(sd=cell_vae().state_dict())
    return model, clip, vae


class LabLoader:
    """V1 node (like the harness's own test nodes): no inputs, three outputs."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {}}

    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    RETURN_NAMES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "load"
    CATEGORY = "Precise Edit lab"
    DESCRIPTION = (
        "The lab's toy-world models: a small v-prediction UNet served as an ε model, a tiny contextual CLIP "
        "(ComfyUI's SD1 CLIP class, 64 wide) and the 8×8 cell VAE. Trained and cached under .cache/lab/."
    )

    def load(self) -> tuple[Any, Any, Any]:
        import folder_paths

        return load_lab_models(folder_paths.get_folder_paths("embeddings")[0])


NODE_CLASS_MAPPINGS = {NODE_ID: LabLoader}
NODE_DISPLAY_NAME_MAPPINGS = {NODE_ID: "Lab Loader (toy world)"}
