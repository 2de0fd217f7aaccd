"""PreciseEdit_IdentityPrompt: write a prompt with an identity's placeholders as text a stock CLIP Text Encode reads."""

from .comfy_node_api import io
from .identity import Identity
from .socket_types import IdentityType


class IdentityPrompt(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_IdentityPrompt",
            display_name="Identity Prompt",
            category="Precise Edit/S2Edit",
            description=(
                "Replaces the placeholders of a learned identity ([I], [A]) in a prompt by embedding:<name> of the "
                "files the trainer saved, so that a stock CLIP Text Encode (for Null-Text Inversion, KSampler, ...) "
                "encodes the learned tokens. The embedding names change with every training run; this node keeps "
                "prompts written with placeholders."
            ),
            inputs=[
                IdentityType.Input("identity", tooltip="From the S2Edit identity-token trainer."),
                io.String.Input(
                    "text",
                    multiline=True,
                    default="a photo of a [I] lady",
                    tooltip="A prompt with the identity's placeholders, e.g. 'a photo of a [I] lady'.",
                ),
            ],
            outputs=[
                io.String.Output(
                    display_name="STRING", tooltip="The prompt with embedding:<name> for each placeholder."
                ),
            ],
        )

    @classmethod
    def execute(cls, identity: Identity, text: str) -> io.NodeOutput:
        placeholders = [token.placeholder for token in identity.tokens]
        if not any(placeholder in text for placeholder in placeholders):
            raise ValueError(
                f"text: the prompt contains none of the identity's placeholders ({', '.join(placeholders)})"
            )
        return io.NodeOutput(identity.expand(text))
