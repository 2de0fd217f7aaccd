"""DeltaEdit's Delta Mapper: text-free training on a folder of images, and loading a trained mapper.

PreciseEdit_DeltaMapperTrainer: text-free training of a Delta Mapper on a folder or batch of images.

PreciseEdit_DeltaMapperLoader: a trained Delta Mapper from models/delta_mappers.
"""

import comfy.model_management
import torch

from ...core.deltaedit.delta_edit import DeltaEditModel
from ...core.deltaedit.delta_mapper import DeltaMapper, DeltaMapperConfig
from ...core.deltaedit.delta_relevance import estimate_relevance
from ...core.deltaedit.delta_training import DEFAULT_BATCH_SIZE, DEFAULT_LEARNING_RATE, code_scale, train_delta_mapper
from ...core.deltaedit.mapper_file import load_delta_edit_model, save_delta_edit_model
from ..common.comfy_node_api import io
from ..common.model_folders import DELTA_MAPPERS, model_path, next_free_path
from ..common.socket_types import DeltaMapperType, JointClip
from ..common.trainer_progress import TrainerProgress
from .delta_training_data import clip_vision_fingerprint, folder_signature, training_embeddings
from .joint_clip_model import JointClipModel


class DeltaMapperTrainer(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_DeltaMapperTrainer",
            display_name="Delta Mapper Trainer (DeltaEdit)",
            category="Precise Edit/DeltaEdit",
            description=(
                "Trains DeltaEdit's Delta Mapper without any text: random image pairs (i, j) teach it to map the "
                "DeltaSpace image difference [ĉ_i, normalize(ĉ_j − ĉ_i)] to the change of the conditioning "
                "embedding s_j − s_i (loss MSE + 1 − cos). At inference a text difference takes the image "
                "difference's place. Also estimates the per-channel relevance used by the disentanglement "
                "threshold, and saves everything to models/delta_mappers."
            ),
            inputs=[
                JointClip.Input("joint_clip", tooltip="The DeltaSpace CLIP (both towers); use it again at inference."),
                io.ClipVision.Input(
                    "clip_vision",
                    tooltip="The CLIP vision model whose image_embeds condition your generator (e.g. the unCLIP "
                    "checkpoint's CLIP_VISION): the space the mapper edits.",
                ),
                io.String.Input(
                    "folder",
                    default="",
                    tooltip="Folder of training images, absolute or relative to ComfyUI's input folder. Caption "
                    "files (.txt) are ignored; other non-image files are refused.",
                ),
                io.Int.Input("steps", default=2000, min=1, max=1_000_000, tooltip="Optimiser steps (batches)."),
                io.Int.Input(
                    "batch_size",
                    default=DEFAULT_BATCH_SIZE,
                    min=1,
                    max=4096,
                    tooltip="Image pairs per step (64 in the paper).",
                ),
                io.Float.Input(
                    "learning_rate",
                    default=DEFAULT_LEARNING_RATE,
                    min=1e-5,
                    max=10.0,
                    step=0.01,
                    tooltip="Adam learning rate (0.5 in the paper; the layers scale it by 0.01).",
                ),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, tooltip="Initial weights and pairs."),
                io.String.Input(
                    "filename_prefix",
                    default="delta_mapper",
                    tooltip="Saved as models/delta_mappers/<prefix>_NNNNN.safetensors; 'sub/name' saves in a "
                    "subfolder. '..', absolute paths, drive letters and Windows device names (CON, NUL, …) are "
                    "refused.",
                ),
                io.Image.Input(
                    "images", optional=True, tooltip="Training images as a batch, added to the folder's images."
                ),
            ],
            outputs=[
                DeltaMapperType.Output(display_name="DELTA_MAPPER", tooltip="The trained mapper (also saved)."),
                io.LossMap.Output(display_name="LOSS", tooltip="Loss per step, for Plot Loss Graph."),
            ],
        )

    @classmethod
    def fingerprint_inputs(cls, folder: str = "", **kwargs) -> str:
        return folder_signature(folder)

    @classmethod
    def execute(
        cls,
        joint_clip: JointClipModel,
        clip_vision,
        folder: str,
        steps: int,
        batch_size: int,
        learning_rate: float,
        seed: int,
        filename_prefix: str,
        images: torch.Tensor | None = None,
    ) -> io.NodeOutput:
        path = next_free_path(DELTA_MAPPERS, filename_prefix)
        data = training_embeddings(joint_clip, clip_vision, folder, images)
        progress = TrainerProgress(steps)
        device = comfy.model_management.get_torch_device()
        with torch.inference_mode(False), torch.enable_grad():
            codes, clip = data.codes.clone(), data.clip.clone()
            config = DeltaMapperConfig.for_target(codes.shape[1], clip.shape[1])
            mapper = DeltaMapper(config, generator=torch.Generator().manual_seed(seed)).to(device)
            scale = code_scale(codes)
            train_delta_mapper(
                mapper,
                codes,
                clip,
                steps=steps,
                batch_size=batch_size,
                learning_rate=learning_rate,
                seed=seed,
                scale=scale,
                on_step=progress.record,
            )
            mapper = mapper.cpu()
            relevance = estimate_relevance(codes, clip)
        model = DeltaEditModel(
            mapper=mapper,
            code_scale=scale,
            relevance=relevance,
            clip_fingerprint=joint_clip.fingerprint,
            target_fingerprint=clip_vision_fingerprint(clip_vision),
            training={
                "images": len(data.names),
                "steps": steps,
                "batch_size": batch_size,
                "learning_rate": learning_rate,
                "seed": seed,
                "joint_clip": joint_clip.name,
                "final_loss": progress.final_loss,
            },
        )
        save_delta_edit_model(model, path)
        return io.NodeOutput(model, progress.loss_map())


class DeltaMapperLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        import folder_paths

        return io.Schema(
            node_id="PreciseEdit_DeltaMapperLoader",
            display_name="Delta Mapper Loader (DeltaEdit)",
            category="Precise Edit/DeltaEdit",
            description=(
                "Loads a Delta Mapper saved by Delta Mapper Trainer: the mapper weights, the relevance matrix for "
                "the disentanglement threshold, and the fingerprints of the two CLIP models it was trained with."
            ),
            inputs=[
                io.Combo.Input(
                    "mapper_name",
                    options=folder_paths.get_filename_list(DELTA_MAPPERS),
                    tooltip="A file in models/delta_mappers written by Delta Mapper Trainer.",
                ),
            ],
            outputs=[DeltaMapperType.Output(display_name="DELTA_MAPPER", tooltip="The trained Delta Mapper.")],
        )

    @classmethod
    def execute(cls, mapper_name: str) -> io.NodeOutput:
        return io.NodeOutput(load_delta_edit_model(model_path(DELTA_MAPPERS, mapper_name)))


NODES = [DeltaMapperTrainer, DeltaMapperLoader]
