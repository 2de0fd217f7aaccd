"""MCDM's paired data: the composable double-canvas guider and the generator that writes a pairs folder.

PreciseEdit_PairedCanvasGuider: MCDM's paired-data generation (eq. 2) as a GUIDER for SamplerCustomAdvanced.

PreciseEdit_PairedDataGenerator: split a generated double-width canvas into (x_A, x_B) and save the pair.
"""

import comfy.samplers
import torch

from ...core.mcdm.composable_canvas import CanvasStrengths, check_canvas_width, combine_denoised, guided, split_canvas
from ...core.mcdm.pairs_folder import append_pairs
from ..common.comfy_node_api import io
from .pairs_folder_location import pairs_folder_for_writing

BRANCHES = ("negative", "shared", "source", "target")


class CanvasGuider(comfy.samplers.CFGGuider):
    """Four conditionings in one batched model call, combined by composable diffusion over the canvas halves."""

    def set_canvas(self, strengths: CanvasStrengths) -> None:
        self.strengths = strengths

    def predict_noise(self, x: torch.Tensor, timestep, model_options: dict | None = None, seed=None) -> torch.Tensor:
        check_canvas_width(x.shape[-1])
        conds = [self.conds.get(name) for name in BRANCHES]
        negative, shared, source, target = comfy.samplers.calc_cond_batch(
            self.inner_model, conds, x, timestep, model_options or {}
        )
        return combine_denoised(
            x,
            guided(negative, shared, self.cfg),
            guided(negative, source, self.cfg),
            guided(negative, target, self.cfg),
            strengths=self.strengths,
        )


class PairedCanvasGuider(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        strength = {"min": -10.0, "max": 10.0, "step": 0.05, "round": 0.001}
        return io.Schema(
            node_id="PreciseEdit_PairedCanvasGuider",
            display_name="Paired Canvas Guider (MCDM)",
            category="Precise Edit/MCDM",
            description=(
                "Generates a training pair for MCDM in one denoising run (the paper's equation 2): the latent is a "
                "double-width canvas, source on the left and target on the right; the noise is s_d·ε̃(shared) + "
                "s_a·M_left⊙ε̃(source) + s_b·M_right⊙ε̃(target), each ε̃ classifier-free guided against the "
                "negative. All four conditionings run in one batched model call. Use with SamplerCustomAdvanced "
                "and an EmptyLatentImage twice as wide as the pair images."
            ),
            inputs=[
                io.Model.Input(
                    "model",
                    tooltip="The generator (with IP-Adapter or other identity patches applied if you use them).",
                ),
                io.Conditioning.Input(
                    "shared",
                    tooltip="The shared prompt over the whole canvas, e.g. 'the same woman on the left and right'; "
                    "add identity embeddings and a pose ControlNet (pose drawn twice side by side) here.",
                ),
                io.Conditioning.Input(
                    "source", tooltip="The source prompt p_a for the left half (x_A), e.g. 'a woman, normal costume'."
                ),
                io.Conditioning.Input(
                    "target",
                    tooltip="The target prompt p_b for the right half (x_B), e.g. 'a woman, santa claus costume'.",
                ),
                io.Conditioning.Input(
                    "negative", tooltip="The negative / empty prompt every branch is guided against."
                ),
                io.Float.Input(
                    "shared_strength",
                    default=0.5,
                    tooltip="s_d: weight of the shared prompt's guided noise on the whole canvas.",
                    **strength,
                ),
                io.Float.Input(
                    "source_strength",
                    default=0.5,
                    tooltip="s_a: weight of the source prompt's guided noise on the left half.",
                    **strength,
                ),
                io.Float.Input(
                    "target_strength",
                    default=0.5,
                    tooltip="s_b: weight of the target prompt's guided noise on the right half.",
                    **strength,
                ),
                io.Float.Input(
                    "cfg",
                    default=7.0,
                    min=0.0,
                    max=100.0,
                    step=0.1,
                    round=0.01,
                    tooltip="Classifier-free guidance scale of each branch ε̃ = ε_neg + cfg·(ε_prompt − ε_neg).",
                ),
            ],
            outputs=[
                io.Guider.Output(tooltip="The canvas guider for SamplerCustomAdvanced; decode, then split the pair."),
            ],
        )

    @classmethod
    def execute(
        cls,
        model,
        shared: list,
        source: list,
        target: list,
        negative: list,
        shared_strength: float,
        source_strength: float,
        target_strength: float,
        cfg: float,
    ) -> io.NodeOutput:
        guider = CanvasGuider(model)
        guider.inner_set_conds({"negative": negative, "shared": shared, "source": source, "target": target})
        guider.set_cfg(cfg)
        guider.set_canvas(CanvasStrengths(shared_strength, source_strength, target_strength))
        return io.NodeOutput(guider)


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
        append_pairs(target, sources, targets, prompt=prompt, source_prompt=source_prompt)
        return io.NodeOutput(sources.clone(), targets.clone())


NODES = [PairedCanvasGuider, PairedDataGenerator]
