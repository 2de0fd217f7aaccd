"""PreciseEdit_OrthogonalityLoss: S2Edit's semantic control term, λ |cos(e_P, e_[I])|, and its current value."""

import torch
from comfy.sd import CLIP
from comfy_execution.graph_utils import ExecutionBlocker

from ..core.orthogonality_loss import absolute_cosine
from .comfy_node_api import io
from .identity import Identity, IdentityToken
from .identity_training import VECTOR_CHOICES, VECTORS_INPUT, SemanticControl, remove_placeholder
from .prompt_tokens import clip_tokenizer, locate_words
from .socket_types import IdentityType, SemanticControlType

PAPER_WEIGHT = 0.1


def _eos_row(clip: CLIP, text: str) -> torch.Tensor:
    tokens = clip.tokenize(text)
    end = clip_tokenizer(clip).end_token
    chunk = tokens[next(iter(tokens))][0]
    position = next(i for i, entry in enumerate(chunk) if i > 0 and entry[0] == end)
    return clip.encode_from_tokens(tokens)[0, position]


def token_cosine(clip: CLIP, identity: Identity, token: IdentityToken, vectors: str, source_prompt: str) -> float:
    """|cos(e_P, e_[I])| of a learned token, encoded by ``clip`` (the trainer's CLIP output) as the trainer does."""
    prompt = source_prompt.strip() or remove_placeholder(token.source_prompt, token.placeholder)
    expanded = identity.expand(token.source_prompt)
    if vectors == VECTORS_INPUT:
        token_vector = torch.cat([vector[0] for vector in token.vectors.values()])
    else:
        position = locate_words(clip, expanded, f"embedding:{token.embedding_name}").all_positions[0]
        token_vector = clip.encode_from_tokens(clip.tokenize(expanded))[0, position]
    return float(absolute_cosine(_eos_row(clip, prompt), token_vector))


class OrthogonalityLoss(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PreciseEdit_OrthogonalityLoss",
            display_name="Orthogonality Loss (S2Edit)",
            category="Precise Edit/S2Edit",
            description=(
                "S2Edit's semantic control for the Identity Token Trainer: adds λ·|cos(e_P, e_[I])| to the "
                "reconstruction loss, with e_P the source prompt's EOS (pooled) embedding and e_[I] the identity "
                "token's embedding, so [I] learns only what the prompt does not say (glasses stay editable). "
                "With an identity connected it also reports the learned tokens' current |cos|."
            ),
            inputs=[
                io.Clip.Input("clip", tooltip="The CLIP to measure with (the trainer's CLIP output for a report)."),
                io.String.Input(
                    "source_prompt",
                    default="",
                    multiline=True,
                    tooltip="The source prompt P without the placeholder; empty: the trainer's prompt minus [I].",
                ),
                io.Float.Input(
                    "weight",
                    default=PAPER_WEIGHT,
                    min=0.0,
                    max=100.0,
                    step=0.01,
                    tooltip="λ in L = L_recons + λ L_semantic (0.1 in the paper; 0 only reports).",
                ),
                io.Combo.Input(
                    "vectors",
                    options=list(VECTOR_CHOICES),
                    default=VECTOR_CHOICES[0],
                    tooltip="e_P is the EOS row of P's conditioning (CLIP's pooled vector before projection on "
                    "SD1.x); e_[I] is the token's row of the enhanced prompt's conditioning (output) or its "
                    "learned input embedding.",
                ),
                IdentityType.Input(
                    "identity", optional=True, tooltip="A trained identity, to report its tokens' current |cos|."
                ),
            ],
            outputs=[
                SemanticControlType.Output(
                    display_name="SEMANTIC_CONTROL", tooltip="Connect to the trainer's semantic_control input."
                ),
                io.Float.Output(display_name="COSINE", tooltip="|cos(e_P, e_[I])| of the identity token [I]."),
                io.String.Output(display_name="REPORT", tooltip="|cos| of every learned token, as text."),
            ],
        )

    @classmethod
    def execute(
        cls, clip, source_prompt: str, weight: float, vectors: str, identity: Identity | None = None
    ) -> io.NodeOutput:
        term = SemanticControl(weight, vectors, source_prompt)
        if identity is None:
            blocker = ExecutionBlocker("COSINE and REPORT need an identity connected to the identity input")
            return io.NodeOutput(term, blocker, blocker)
        cosines = {t.placeholder: token_cosine(clip, identity, t, vectors, source_prompt) for t in identity.tokens}
        report = ", ".join(f"{p}: |cos| = {c:.4f}" for p, c in cosines.items())
        return io.NodeOutput(term, cosines[identity.tokens[0].placeholder], report)
