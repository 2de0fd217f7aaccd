"""The source and target prompts of a prompt-to-prompt edit as tokens of the connected CLIP, and the token mapping
between them (``core.s2edit.token_alignment``).

Words are the prompt's space-separated pieces (as in the official code's ``prompt.split(" ")``). Each word is
tokenized on its own with the same tokenizer (embeddings included), and the words' tokens must add up to the
prompt's: then the word spans are known exactly, whatever the prompt weighting syntax inside one word.
"""

from collections.abc import Hashable
from dataclasses import dataclass

import torch
from comfy.sd import CLIP
from comfy.sd1_clip import SDTokenizer

from ...core.attention.word_tokens import Token
from ...core.s2edit.token_alignment import refinement_mapper, replacement_mapper
from ..attention.prompt_tokens import clip_tokenizer, describe_tokens

REPLACE = "replace"
REFINE = "refine"


@dataclass(frozen=True, kw_only=True)
class PromptTokens:
    """A prompt's flat token sequence (CLIP chunks of 77 concatenated), its words' positions and the positions of
    the start, end and padding tokens."""

    text: str
    tokens: tuple[Token, ...]
    words: tuple[str, ...]
    word_positions: tuple[tuple[int, ...], ...]
    specials: tuple[int, ...]

    @property
    def length(self) -> int:
        return len(self.tokens)

    def keys(self) -> list[Hashable]:
        """Comparable tokens: ids as they are, embedding vectors by their values."""
        return [t if isinstance(t, int) else ("embedding", tuple(t.flatten().tolist())) for t in self.tokens]


def _flat_tokens(tokenizer: SDTokenizer, text: str) -> list[list[Token]]:
    return [[entry[0] for entry in chunk] for chunk in tokenizer.tokenize_with_weights(text)]


def _is_special(tokenizer: SDTokenizer, token: Token) -> bool:
    return isinstance(token, int) and token in (tokenizer.start_token, tokenizer.end_token, tokenizer.pad_token)


def prompt_tokens(clip: CLIP, text: str, name: str) -> PromptTokens:
    """Tokenize the prompt ``text`` (input ``name``) and find its words' token positions."""
    if not text.strip():
        raise ValueError(f"{name}: the prompt is empty")
    tokenizer = clip_tokenizer(clip)
    chunks = _flat_tokens(tokenizer, text)
    tokens = [token for chunk in chunks for token in chunk]
    specials = [i for i, token in enumerate(tokens) if _is_special(tokenizer, token)]
    ordinary = [i for i, token in enumerate(tokens) if not _is_special(tokenizer, token)]
    words = text.split()
    positions: list[tuple[int, ...]] = []
    offset = 0
    for word in words:
        count = sum(not _is_special(tokenizer, t) for chunk in _flat_tokens(tokenizer, word) for t in chunk)
        positions.append(tuple(ordinary[offset : offset + count]))
        offset += count
    if offset != len(ordinary):
        raise ValueError(
            f"{name}: the prompt's tokens ({describe_tokens(tokenizer, chunks)}) are not the tokens of its "
            "space-separated words taken one by one; write weights per word, e.g. '(red:1.2) (hat:1.2)' rather "
            "than '(red hat:1.2)'"
        )
    return PromptTokens(
        text=text,
        tokens=tuple(tokens),
        words=tuple(words),
        word_positions=tuple(positions),
        specials=tuple(specials),
    )


def choose_controller(source: PromptTokens, target: PromptTokens, controller: str) -> str:
    """ "auto": replacement when the prompts have as many words, refinement otherwise."""
    if controller == "auto":
        return REPLACE if len(source.words) == len(target.words) else REFINE
    if controller == REPLACE and len(source.words) != len(target.words):
        raise ValueError(
            f"controller: replacement swaps words one for one, but the source prompt has {len(source.words)} words "
            f"and the target prompt {len(target.words)}; use refine (or auto) for prompts that add or remove words"
        )
    if controller not in (REPLACE, REFINE):
        raise ValueError(f"controller: expected auto, {REPLACE} or {REFINE}, got {controller!r}")
    return controller


def token_mapping(
    source: PromptTokens, target: PromptTokens, controller: str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(M, None)`` for replacement, ``(m, α)`` for refinement (see ``core.s2edit.token_alignment``)."""
    if source.length != target.length:
        raise ValueError(
            f"target_text: the target prompt has {target.length} tokens ({target.length // 77} CLIP chunks), the "
            f"source prompt {source.length}; prompt-to-prompt needs prompts of the same number of 77-token chunks"
        )
    if controller == REPLACE:
        pairs = []
        for k, (s, t) in enumerate(zip(source.word_positions, target.word_positions, strict=True)):
            if not s and not t:
                continue
            if not s or not t:
                raise ValueError(
                    f"target_text: word {k + 1} ('{source.words[k]}' → '{target.words[k]}') has no tokens in one "
                    "prompt; use refine for this edit"
                )
            pairs.append((s, t))
        return replacement_mapper(pairs, source.specials, target.specials, source.length), None
    return refinement_mapper(source.keys(), target.keys())
