"""``PreciseEditLab_Loader`` and ``PreciseEditLab_InstructLoader``: the lab's trained models as ComfyUI's MODEL, CLIP
and VAE; ``PreciseEditLab_MagicBrushLoader``: the second instruction model, MagicBrush's stand-in, as MODEL (lab
only, never in the pack).

ComfyUI's model detection does not know models this small, so they load through these nodes: the text-to-image
UNet (or the InstructPix2Pix-style instruction UNet), the text encoder and the cell VAE come from ``.cache/lab/``
(trained there on first use, see ``lab.train`` and ``lab.train_instruction``).
"""

from __future__ import annotations

from typing import Any

NODE_ID = "PreciseEditLab_Loader"
INSTRUCT_NODE_ID = "PreciseEditLab_InstructLoader"
MCDM_NODE_ID = "PreciseEditLab_MCDMLoader"
MAGICBRUSH_NODE_ID = "PreciseEditLab_MagicBrushLoader"
UNCLIP_NODE_ID = "PreciseEditLab_UnCLIPLoader"


def _clip_and_vae(embedding_directory: str | None) -> tuple[Any, Any]:
    """The lab's random contextual CLIP and the cell VAE."""
    import comfy.sd

    from harness.tiny_models import cell_vae
    from lab import train
    from lab.models import text_encoder

    clip = text_encoder.build_clip(train.text_encoder_state(), embedding_directory)
    return clip, comfy.sd.VAE(sd=cell_vae().state_dict())


def load_lab_models(embedding_directory: str | None = None) -> tuple[Any, Any, Any]:
    """(MODEL, CLIP, VAE) of the lab: trained UNet, random contextual CLIP and cell VAE."""
    from lab import train
    from lab.models import unet

    clip, vae = _clip_and_vae(embedding_directory)
    return unet.model_patcher(train.unet_state(clip)), clip, vae


def load_instruction_models(embedding_directory: str | None = None) -> tuple[Any, Any, Any]:
    """(MODEL, CLIP, VAE) for instruction editing: the trained 8-channel instruction UNet, the same CLIP and VAE."""
    from lab import train_instruction
    from lab.models import instruction_unet

    clip, vae = _clip_and_vae(embedding_directory)
    return instruction_unet.model_patcher(train_instruction.instruction_unet_state(clip)), clip, vae


def load_unclip_models(embedding_directory: str | None = None) -> tuple[Any, Any, Any, Any]:
    """(MODEL, CLIP_VISION, CLIP, VAE) for DeltaEdit: the unCLIP-style UNet, the toy joint CLIP's vision tower,
    the part-1 CLIP (the unCLIP model reads the empty prompt) and the cell VAE."""
    from lab import train_deltaedit
    from lab.models import unclip_unet

    clip, vae = _clip_and_vae(embedding_directory)
    model = unclip_unet.model_patcher(train_deltaedit.unclip_unet_state(clip))
    return model, train_deltaedit.cached_clip_vision(), clip, vae


def load_mcdm_models(embedding_directory: str | None = None) -> tuple[Any, Any, Any, Any]:
    """(PE_MCDM, MODEL, CLIP, VAE) for MCDM editing: the trained lab MCDM, its UNet, the same CLIP and VAE."""
    from lab import train_mcdm

    clip, vae = _clip_and_vae(embedding_directory)
    mcdm = train_mcdm.load_mcdm(clip)
    return mcdm, mcdm.model, clip, vae


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


class LabInstructLoader(LabLoader):
    """The instruction model's loader: LabLoader's sockets, the InstructPix2Pix-style UNet as MODEL."""

    DESCRIPTION = (
        "The lab's toy-world instruction models: an InstructPix2Pix-style UNet (8 input channels: noisy latent + "
        "source image latent; v-prediction served as ε) trained on the world's change/add/remove edits, the tiny "
        "contextual CLIP and the 8×8 cell VAE. Trained and cached under .cache/lab/."
    )

    def load(self) -> tuple[Any, Any, Any]:
        import folder_paths

        return load_instruction_models(folder_paths.get_folder_paths("embeddings")[0])


class LabUnCLIPLoader(LabLoader):
    """The unCLIP model's loader: MODEL and CLIP_VISION for unCLIPConditioning, with the lab CLIP and VAE."""

    RETURN_TYPES = ("MODEL", "CLIP_VISION", "CLIP", "VAE")
    RETURN_NAMES = ("MODEL", "CLIP_VISION", "CLIP", "VAE")
    DESCRIPTION = (
        "The lab's toy-world unCLIP models: the part-1 UNet fine-tuned to read a CLIP image embedding through the "
        "ADM input (ComfyUI's SD 2.1 unCLIP route: unCLIPConditioning, noise augmentor), the vision tower of the "
        "toy joint CLIP (the DeltaSpace encoder, also written to models/clip_joint) as CLIP_VISION, the tiny "
        "contextual CLIP and the 8×8 cell VAE. Trained and cached under .cache/lab/."
    )

    def load(self) -> tuple[Any, Any, Any, Any]:
        import folder_paths

        return load_unclip_models(folder_paths.get_folder_paths("embeddings")[0])


class LabMagicBrushLoader(LabLoader):
    """MagicBrush's stand-in: the instruction UNet fine-tuned further on another mix of the edits, as MODEL only
    (it shares the instruction loader's CLIP and VAE)."""

    RETURN_TYPES = ("MODEL",)
    RETURN_NAMES = ("MODEL",)
    DESCRIPTION = (
        "The lab's MagicBrush stand-in for the Fused Instruct Guider's magicbrush input: the toy-world instruction "
        "UNet fine-tuned further on a smaller set of other edits, half of them removals (MagicBrush is "
        "InstructPix2Pix fine-tuned on a smaller, more local set). Trained and cached under .cache/lab/."
    )

    def load(self) -> tuple[Any]:
        from lab import train, train_instruction
        from lab.models import instruction_unet, text_encoder

        clip = text_encoder.build_clip(train.text_encoder_state())
        return (instruction_unet.model_patcher(train_instruction.magicbrush_state(clip)),)


class LabMCDMLoader(LabLoader):
    """The MCDM's loader: the pack's PE_MCDM socket (as MCDM Loader gives it), its UNet, the CLIP and the VAE."""

    RETURN_TYPES = ("PE_MCDM", "MODEL", "CLIP", "VAE")
    RETURN_NAMES = ("MCDM", "MODEL", "CLIP", "VAE")
    DESCRIPTION = (
        "The lab's toy-world MCDM: the part-1 UNet fine-tuned by the pack's MCDM training on paired portraits (8 "
        "input channels, v-prediction served as ε), its image-embedding adapter and a tiny random CLIP vision tower "
        "(ComfyUI's class), with the tiny contextual CLIP and the 8×8 cell VAE. Trained and cached under .cache/lab/."
    )

    def load(self) -> tuple[Any, Any, Any, Any]:
        import folder_paths

        return load_mcdm_models(folder_paths.get_folder_paths("embeddings")[0])


NODE_CLASS_MAPPINGS = {
    NODE_ID: LabLoader,
    INSTRUCT_NODE_ID: LabInstructLoader,
    MCDM_NODE_ID: LabMCDMLoader,
    MAGICBRUSH_NODE_ID: LabMagicBrushLoader,
    UNCLIP_NODE_ID: LabUnCLIPLoader,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    NODE_ID: "Lab Loader (toy world)",
    INSTRUCT_NODE_ID: "Lab Instruction Loader (toy world)",
    MCDM_NODE_ID: "Lab MCDM Loader (toy world)",
    MAGICBRUSH_NODE_ID: "Lab MagicBrush Loader (toy world)",
    UNCLIP_NODE_ID: "Lab unCLIP Loader (toy world)",
}
