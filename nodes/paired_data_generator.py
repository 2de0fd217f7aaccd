"""PreciseEdit_PairedDataGenerator: split a generated double-width canvas into (x_A, x_B) and save the pair."""

import torch

from ..core.composable_canvas import split_canvas
from ..core.mcdm_pairs import append_pairs
from .comfy_node_api import io
from .mcdm_pairs_folder import pairs_folder_for_writing


class PairedDataGenerator(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_PairedDataGenerator",
            display_name="Paired Data Generator (MCDM)",
            category="Precise Edit/MCDM",
            description=(
                "Splits decoded double-width canvases from the Paired Canvas Guider into the source x_A (left half) "
                "and target x_B (right half) and appends them to an MCDM training folder in the official layout: "
                "condition/<id>.png, gt/<id>.png and a prompt.json line {source, target, prompt, source_prompt}. "
                "Files are written atomically, so an interrupted run never leaves half a pair."
            ),
            inputs=[
                io.Image.Input(
                    "images",
                    tooltip="Decoded canvases [x_A, x_B] side by side (VAE Decode of the canvas latent); a batch "
                    "gives one pair per image.",
                ),
                io.String.Input(
                    "folder",
                    default="mcdm_pairs/edit",
                    tooltip="The training folder inside ComfyUI's output directory (e.g. 'mcdm_pairs/edit'); new "
                    "pairs are numbered after the ones already there. '..', absolute paths, drive letters and "
                    "Windows device names (CON, NUL, …) are refused.",
                ),
                io.String.Input(
                    "prompt",
                    default="a woman, santa claus costume",
                    tooltip="The edit prompt stored for training (the target prompt p_b, e.g. 'a man, santa claus "
                    "costume').",
                ),
                io.String.Input(
                    "source_prompt",
                    default="a woman",
                    tooltip="The caption of the source x_A (used by the reconstruction pairs in training).",
                ),
            ],
            outputs=[
                io.Image.Output(display_name="x_A", tooltip="The left halves: the sources written to condition/."),
                io.Image.Output(display_name="x_B", tooltip="The right halves: the targets written to gt/."),
            ],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, images: torch.Tensor, folder: str, prompt: str, source_prompt: str) -> io.NodeOutput:
        target = pairs_folder_for_writing(folder)
        try:
            sources, targets = split_canvas(images)
        except ValueError as error:
            raise ValueError(f"images: {error}") from None
        append_pairs(target, sources, targets, prompt, source_prompt)
        return io.NodeOutput(sources.clone(), targets.clone())
