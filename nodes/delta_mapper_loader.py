"""PreciseEdit_DeltaMapperLoader: a trained Delta Mapper from models/delta_mappers."""

from ..core.delta_mapper_file import load_delta_edit_model
from .comfy_node_api import io
from .model_folders import DELTA_MAPPERS, model_path
from .socket_types import DeltaMapperType


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
