"""Token positions of words in a prompt, found with the connected CLIP's own tokenizer (embeddings included)."""

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
