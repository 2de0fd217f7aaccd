"""The source and target prompts of a prompt-to-prompt edit as tokens of the connected CLIP, and the token mapping
between them (``core.s2edit.token_alignment``).

Words are the prompt's space-separated pieces (as in the official code's ``prompt.split(" ")``). Each word is
tokenized on its own with the same tokenizer (embeddings included), and the words' tokens must add up to the
prompt's: then the word spans are known exactly, whatever the prompt weighting syntax inside one word.

On a DiT the tokens are the sequence its text encoder hands to the joint attention (``prompt_tokens.dit_text_parts``:
T5 for Flux, CLIP-L/G then T5 for SD3, Qwen2.5 without the template's system prompt for Qwen-Image, Flux.2's encoder
left-padded to the model's text length). Each encoder's part holds the words once, in order, each spelled as the
tokenizer splits it alone or with a leading space (BPE tokenizers); tokens after the last word (a template's end) count
as special tokens. A multi-part prompt lists its words once per part, so a replacement pairs a word's tokens within
each encoder's part.
"""

from collections.abc import Hashable
from dataclasses import dataclass

import torch
from comfy.sd import CLIP
from comfy.sd1_clip import SDTokenizer

from ...core.attention.word_tokens import Token
from ...core.s2edit.token_alignment import refinement_mapper, replacement_mapper
from ..attention.prompt_tokens import TextPart, clip_tokenizer, describe_tokens, dit_text_parts, prompt_token_chunks

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


def _word_alone(tokenizer: SDTokenizer, spelling: str) -> list[Token]:
    return [t for chunk in prompt_token_chunks(tokenizer, spelling) for t in chunk if not _is_special(tokenizer, t)]


def _same(first: list[Token], second: list[Token]) -> bool:
    return len(first) == len(second) and all(
        a == b if isinstance(a, int) and isinstance(b, int) else torch.equal(torch.as_tensor(a), torch.as_tensor(b))
        for a, b in zip(first, second, strict=True)
    )


def _part_words(part: TextPart, words: list[str], name: str) -> tuple[list[tuple[int, ...]], list[int]]:
    """Each word's positions in one encoder's part, and the part's special positions (template ends included)."""
    tokenizer, tokens = part.tokenizer, part.tokens
    specials = [i for i, token in enumerate(tokens) if _is_special(tokenizer, token)]
    ordinary = [i for i, token in enumerate(tokens) if not _is_special(tokenizer, token)]
    positions: list[tuple[int, ...]] = []
    cursor = 0
    for word in words:
        ahead = [tokens[i] for i in ordinary[cursor:]]
        spelled = None
        for spelling in (word, " " + word):
            expected = _word_alone(tokenizer, spelling)
            if expected and _same(ahead[: len(expected)], expected):
                spelled = len(expected)
                break
        if spelled is None:
            raise ValueError(
                f"{name}: the word {word!r} is not where the prompt's tokens put it; write weights per word, e.g. "
                "'(red:1.2) (hat:1.2)' rather than '(red hat:1.2)'"
            )
        positions.append(tuple(ordinary[cursor : cursor + spelled]))
        cursor += spelled
    return positions, sorted(specials + ordinary[cursor:])


def dit_prompt_tokens(clip: CLIP, text: str, name: str, padded_text: int = 0) -> PromptTokens:
    """The prompt ``text`` (input ``name``) as the tokens a DiT attends to, left-padded to ``padded_text``."""
    if not text.strip():
        raise ValueError(f"{name}: the prompt is empty")
    words = text.split()
    tokens: list[Token] = []
    positions: list[tuple[int, ...]] = []
    specials: list[int] = []
    parts = dit_text_parts(clip, text)
    for part in parts:
        offset = len(tokens)
        part_positions, part_specials = _part_words(part, words, name)
        positions += [tuple(offset + p for p in word) for word in part_positions]
        specials += [offset + p for p in part_specials]
        tokens += part.tokens
    pad = max(0, padded_text - len(tokens))
    return PromptTokens(
        text=text,
        tokens=tuple([parts[0].tokenizer.pad_token] * pad + tokens),
        words=tuple(words * len(parts)),
        word_positions=tuple(tuple(pad + p for p in word) for word in positions),
        specials=tuple(range(pad)) + tuple(pad + p for p in specials),
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
