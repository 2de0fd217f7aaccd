"""Token positions of words in a prompt, found with the connected CLIP's own tokenizer (embeddings included).

UNets (SD1.x/2.x, SDXL) attend to CLIP-L/H/G tokens in 77-token chunks. DiTs attend to the text encoder's output
sequence, found from the CLIP's own ``tokenize_with_weights`` (templates included) and its tokenizer keys:

- Flux.1 / Kontext: the T5 tokens (CLIP-L only gives the pooled vector);
- SD3: the CLIP-L/G chunks (77 tokens each, L and G side by side), then the T5 tokens when T5 is loaded;
- Qwen-Image: the Qwen2.5 tokens after the template's system prompt and ``<|im_start|>user\n``, which ComfyUI's
  encoder drops (the position of the second ``<|im_start|>``, plus its ``user`` and newline tokens);
- Flux.2 and other single-encoder models: that encoder's tokens, template included.

A word is looked up as the tokenizer splits it alone and with a leading space (BPE tokenizers such as Qwen's and
Mistral's give a word inside a sentence its own token).
"""

from dataclasses import dataclass

from comfy.sd import CLIP
from comfy.sd1_clip import SDTokenizer

from ...core.attention.word_tokens import Token, find_token_positions

TOKENIZER_ATTRIBUTES = ("clip_l", "clip_h", "clip_g")


@dataclass(frozen=True)
class WordPositions:
    """Each word's token positions in the prompt, and the prompt's length in tokens (77 per CLIP chunk)."""

    words: dict[str, list[int]]
    context_length: int

    @property
    def all_positions(self) -> list[int]:
        return sorted({i for positions in self.words.values() for i in positions})


def parse_words(words: str) -> list[str]:
    """Comma-separated words or phrases, stripped, empty entries dropped."""
    parsed = [w.strip() for w in words.split(",") if w.strip()]
    if not parsed:
        raise ValueError("words is empty: give at least one word of the prompt (comma-separate several)")
    return parsed


def clip_tokenizer(clip: CLIP) -> SDTokenizer:
    """The CLIP-L/H/G tokenizer whose token positions index the conditioning (SD1.x, SD2.x, SDXL)."""
    for name in TOKENIZER_ATTRIBUTES:
        tokenizer = getattr(clip.tokenizer, name, None)
        if isinstance(tokenizer, SDTokenizer):
            return tokenizer
    raise ValueError(
        f"this CLIP ({type(clip.tokenizer).__name__}) has no CLIP-L/H/G tokenizer; word lookup needs the text "
        "encoder of an SD1.x, SD2.x or SDXL checkpoint"
    )


def prompt_token_chunks(tokenizer: SDTokenizer, text: str) -> list[list[Token]]:
    """The prompt's tokens, one list per 77-token chunk (start, end and padding included)."""
    return [[entry[0] for entry in chunk] for chunk in tokenizer.tokenize_with_weights(text)]


def _word_tokens(tokenizer: SDTokenizer, word: str) -> list[Token]:
    tokens = prompt_token_chunks(tokenizer, word)[0]
    if tokenizer.start_token is not None:
        tokens = tokens[1:]
    ends = [i for i, t in enumerate(tokens) if isinstance(t, int) and t == tokenizer.end_token]
    return tokens[: ends[0]] if ends else tokens


def word_positions(tokenizer: SDTokenizer, chunks: list[list[Token]], words: list[str]) -> dict[str, list[int]]:
    """Each word's positions in the tokenized prompt ``chunks``, an empty list for a word that is not in it (the
    token view asks for all of them; ``locate_words`` refuses a missing one)."""
    flat = [token for chunk in chunks for token in chunk]
    return {word: find_token_positions(flat, _word_tokens(tokenizer, word)) for word in words}


def describe_tokens(tokenizer: SDTokenizer, chunks: list[list[Token]]) -> str:
    """The prompt's tokens as text, position by position, without start/end/padding."""
    special = {tokenizer.start_token, tokenizer.end_token, tokenizer.pad_token}
    shown = []
    for offset, chunk in enumerate(chunks):
        for i, token in enumerate(chunk):
            position = offset * len(chunk) + i
            if isinstance(token, int):
                if token not in special:
                    shown.append(f"{position}:{tokenizer.inv_vocab[token].replace('</w>', '')}")
            else:
                shown.append(f"{position}:<embedding>")
    return " ".join(shown) if shown else "(none)"


def locate_words(clip: CLIP, text: str, words: str) -> WordPositions:
    """Positions of each comma-separated word of ``words`` in ``text``; a clear error for a missing word."""
    tokenizer = clip_tokenizer(clip)
    chunks = prompt_token_chunks(tokenizer, text)
    found = word_positions(tokenizer, chunks, parse_words(words))
    for word, positions in found.items():
        if not positions:
            raise ValueError(
                f"'{word}' is not in the prompt. The prompt's tokens are: {describe_tokens(tokenizer, chunks)}"
            )
    return WordPositions(found, sum(len(chunk) for chunk in chunks))


QWEN_TEMPLATE_KEY = "qwen25_7b"
SPACE_MARKS = ("Ġ", "▁", "</w>")


@dataclass(frozen=True)
class TextPart:
    """One encoder's tokens in the sequence a DiT attends to."""

    tokenizer: SDTokenizer
    tokens: list[Token]


def sub_tokenizer(clip: CLIP, key: str) -> SDTokenizer:
    """The tokenizer behind ``key`` of the CLIP's ``tokenize_with_weights`` output ("l" is ``clip_l``)."""
    tokenizer = getattr(clip.tokenizer, key, None) or getattr(clip.tokenizer, f"clip_{key}", None)
    if not isinstance(tokenizer, SDTokenizer):
        raise ValueError(f"this CLIP ({type(clip.tokenizer).__name__}) has no tokenizer for its '{key}' tokens")
    return tokenizer


def template_end(tokens: list[Token], tokenizer: SDTokenizer) -> int:
    """Where ComfyUI's Qwen-Image encoder cuts the template: at the second ``<|im_start|>`` (or the only one),
    after it when it is followed by ``user`` and a newline."""
    start = tokenizer.tokenizer.convert_tokens_to_ids("<|im_start|>")
    user = tokenizer.tokenizer("user\n")["input_ids"]
    starts = [i for i, token in enumerate(tokens) if isinstance(token, int) and token == start][:2]
    if not starts:
        return 0
    end = starts[-1]
    after = end + 1 + len(user)
    if tokens[end + 1 : after] == user and len(tokens) > after:
        return after
    return end


def dit_text_parts(clip: CLIP, text: str) -> list[TextPart]:
    """The token sequence the CLIP's encoder hands to a DiT for ``text``, per encoder, in order."""
    tokenized = clip.tokenizer.tokenize_with_weights(text)
    keys = set(tokenized)

    def part(key: str) -> TextPart:
        return TextPart(sub_tokenizer(clip, key), [entry[0] for chunk in tokenized[key] for entry in chunk])

    if {"l", "g", "t5xxl"} <= keys:
        parts = [part("l")]
        if getattr(clip.cond_stage_model, "t5xxl", None) is not None:
            parts.append(part("t5xxl"))
        return parts
    if "t5xxl" in keys:
        return [part("t5xxl")]
    if len(keys) == 1:
        (key,) = keys
        whole = part(key)
        if key == QWEN_TEMPLATE_KEY:
            return [TextPart(whole.tokenizer, whole.tokens[template_end(whole.tokens, whole.tokenizer) :])]
        return [whole]
    raise ValueError(
        f"this CLIP ({type(clip.tokenizer).__name__}, tokenizers {sorted(keys)}) is not the text encoder of a "
        "supported DiT (T5 for Flux, CLIP-L/G + T5 for SD3, Qwen2.5-VL for Qwen-Image, the Flux.2 encoders)"
    )


def describe_part_tokens(part: TextPart, offset: int) -> list[str]:
    """A part's tokens as ``position:text``, without start/end/padding."""
    tokenizer = part.tokenizer
    special = {tokenizer.start_token, tokenizer.end_token, tokenizer.pad_token}
    shown = []
    for i, token in enumerate(part.tokens):
        if isinstance(token, int):
            if token not in special:
                name = tokenizer.inv_vocab.get(token, str(token))
                for mark in SPACE_MARKS:
                    name = name.replace(mark, "")
                shown.append(f"{offset + i}:{name}")
        else:
            shown.append(f"{offset + i}:<embedding>")
    return shown


def locate_dit_words(clip: CLIP, text: str, words: str) -> WordPositions:
    """Positions of each comma-separated word of ``words`` in the sequence a DiT attends to for ``text``, and that
    sequence's length; a clear error for a missing word."""
    parts = dit_text_parts(clip, text)
    found: dict[str, list[int]] = {}
    for word in parse_words(words):
        positions: set[int] = set()
        offset = 0
        for part in parts:
            for spelling in (word, " " + word):
                positions.update(
                    offset + p for p in find_token_positions(part.tokens, _word_tokens(part.tokenizer, spelling))
                )
            offset += len(part.tokens)
        if not positions:
            shown, offset = [], 0
            for part in parts:
                shown += describe_part_tokens(part, offset)
                offset += len(part.tokens)
            raise ValueError(f"'{word}' is not in the prompt. The prompt's tokens are: {' '.join(shown) or '(none)'}")
        found[word] = sorted(positions)
    return WordPositions(found, sum(len(part.tokens) for part in parts))


def left_padded(positions: WordPositions, length: int) -> WordPositions:
    """The positions after the model left-pads the prompt to ``length`` tokens (unchanged when it is longer)."""
    pad = length - positions.context_length
    if pad <= 0:
        return positions
    return WordPositions({word: [p + pad for p in found] for word, found in positions.words.items()}, length)
