"""The instruction's last_hidden_state from a ComfyUI CLIP, as ZONE feeds its action classifier.

ZONE encodes the instruction with IP2P's CLIP-L text encoder: ``tokenizer(text, padding="max_length",
max_length=77, truncation=True)`` then ``text_encoder(ids, attention_mask)[0]``, the final-layer-normed last layer
of 77 tokens [BOS, words, EOS, padding] in which the padding positions attend only to the real tokens. Here the
same comes from ComfyUI's CLIP: its tokenizer's first 77-token chunk, the last layer whatever CLIPSetLastLayer says,
and the padding masked out as keys (ComfyUI's SD1 CLIP can mask, it only does not by default).

For training, where only positions up to EOS count, each instruction is encoded just up to its EOS with the same
modules (ComfyUI's CLIP always adds all 77 position embeddings, so this calls its embeddings, encoder and final
norm directly): with causal attention those positions are exactly what the 77-token run gives, at a fraction of the
cost (~12 instead of 77 tokens per instruction).
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import comfy.model_management
import torch


def _encoder(clip: object) -> tuple[object, str, int]:
    """ComfyUI's CLIP-L text model inside ``clip``, its tokens key and its end token; ValueError for other CLIPs."""
    model = getattr(clip, "cond_stage_model", None)
    tokenizer = getattr(clip, "tokenizer", None)
    key = getattr(model, "clip_name", None)
    inner = getattr(model, getattr(model, "clip", ""), None)
    inner_tokenizer = getattr(tokenizer, getattr(tokenizer, "clip", ""), None)
    if key != "l" or not hasattr(inner, "enable_attention_masks") or inner_tokenizer is None:
        raise ValueError(
            "clip must be a single CLIP-L text encoder (SD1.x / InstructPix2Pix, as ZONE uses); this CLIP "
            f"({type(model).__name__}) is not"
        )
    return inner, key, int(inner_tokenizer.end_token)


def instruction_tokens(clip: object, instruction: str) -> list[int]:
    """The 77 token ids ZONE's tokenizer call gives (first chunk: BOS, words, EOS, padding)."""
    _, key, _ = _encoder(clip)
    return [int(pair[0]) for pair in clip.tokenize(instruction)[key][0]]


def token_count(tokens: Sequence[int], end_token: int) -> int:
    """Positions BOS … EOS (inclusive) of a token row."""
    return tokens.index(end_token, 1) + 1 if end_token in tokens[1:] else len(tokens)


@contextmanager
def _padding_masked(encoder: object) -> Iterator[None]:
    previous = encoder.enable_attention_masks
    encoder.enable_attention_masks = True
    try:
        yield
    finally:
        encoder.enable_attention_masks = previous


def _encode(clip: object, rows: list[list[int]]) -> torch.Tensor:
    """[N, T, D] last-layer states of equally long token rows (one ComfyUI encode call)."""
    _, key, _ = _encoder(clip)
    last_layer = clip.clone()
    last_layer.layer_idx = None
    states = last_layer.encode_from_tokens({key: [[(token, 1.0) for token in row] for row in rows]})
    return states.reshape(len(rows), len(rows[0]), -1).float()


def _encode_prefix(clip: object, rows: list[list[int]]) -> torch.Tensor:
    """[N, L, D] last-layer states of equally long token rows of L ≤ 77 tokens, causal attention only."""
    encoder, _, _ = _encoder(clip)
    clip.load_model()
    text_model = encoder.transformer.text_model
    embeddings = text_model.embeddings
    device = embeddings.token_embedding.weight.device
    ids = torch.tensor(rows, device=device)
    positions = comfy.model_management.cast_to(embeddings.position_embedding.weight, dtype=torch.float32, device=device)
    x = embeddings.token_embedding(ids, out_dtype=torch.float32) + positions[: ids.shape[1]]
    causal = torch.full((ids.shape[1],) * 2, -torch.finfo(x.dtype).max, dtype=x.dtype, device=device).triu_(1)
    x, _ = text_model.encoder(x, mask=causal)
    return text_model.final_layer_norm(x).float()


def instruction_states(clip: object, instruction: str) -> tuple[torch.Tensor, int]:
    """The [77, D] last_hidden_state ZONE classifies (padding masked as keys) and the BOS … EOS token count."""
    encoder, _, end_token = _encoder(clip)
    tokens = instruction_tokens(clip, instruction)
    with _padding_masked(encoder):
        states = _encode(clip, [tokens])[0]
    return states, token_count(tokens, end_token)


def instruction_states_up_to_eos(
    clip: object, instructions: Sequence[str], batch_size: int = 32
) -> tuple[list[torch.Tensor], list[int]]:
    """Per instruction its [L, D] states for positions BOS … EOS (L tokens), batched by similar length."""
    _, _, end_token = _encoder(clip)
    rows = [instruction_tokens(clip, text) for text in instructions]
    counts = [token_count(row, end_token) for row in rows]
    order = sorted(range(len(rows)), key=lambda index: counts[index])
    states: list[torch.Tensor | None] = [None] * len(rows)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        length = max(counts[index] for index in batch)
        encoded = _encode_prefix(clip, [rows[index][:length] for index in batch])
        for slot, index in enumerate(batch):
            states[index] = encoded[slot, : counts[index]].clone()
    return states, counts
