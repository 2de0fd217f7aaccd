"""PreciseEdit_InversionReconstruct: sample back from an inversion to check how faithfully it reproduces the image."""

from .comfy_node_api import io
from .inversion import Inversion, check_conditioning, check_inversion_fits, reconstruct
from .socket_types import InvertedLatent


class InversionReconstruct(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_InversionReconstruct",
            display_name="Inversion Reconstruct",
            category="Precise Edit/S2Edit",
            description=(
                "Replays guided DDIM sampling from an inversion's noise with its per-step null-text embeddings (or "
                "its negative prompt in the fast modes) at the inversion's guidance. With the source prompt the "
                "result should match the source latent: decode both and compare to judge the inversion. The identity "
                "token is masked as in the inversion."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The model the inversion was made with (patches may be added)."),
                InvertedLatent.Input("inversion", tooltip="From Null-Text Inversion."),
                io.Conditioning.Input(
                    "positive",
                    tooltip="The source prompt the inversion was made under (the same conditioning); another prompt "
                    "is refused: edit with Prompt-to-Prompt Edit.",
                ),
            ],
            outputs=[io.Latent.Output(display_name="LATENT", tooltip="The reconstructed latent; decode with the VAE.")],
        )

    @classmethod
    def execute(cls, model, inversion: Inversion, positive: list) -> io.NodeOutput:
        check_inversion_fits(inversion, model)
        check_conditioning(positive, "positive", model)
        return io.NodeOutput({"samples": reconstruct(model, inversion, positive)})
