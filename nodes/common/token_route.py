"""The token view's server route: a prompt's tokens, and where given words sit in it, as the word nodes find them.

``POST /precise_edit/tokens`` with ``{"text": ..., "family": "sd1" | "sd2" | "sdxl", "words": [...]}`` answers
``{"family", "context_length", "tokens": [{"position", "text"}], "words": [{"text", "positions"}],
"found": {word: positions}, "missing": [word, ...]}``. It tokenizes with ComfyUI's own tokenizer of that family (the
CLIP-L/H/G tokenizer files under ``comfy/``, embeddings read from ``models/embeddings``) and looks words up with the
same function the nodes use (``nodes.attention.prompt_tokens.word_positions``), so a word the view marks as missing
is one the node would refuse. ``words`` in the answer are the chips the web extension shows: the prompt's
space-separated words with their token positions (as prompt-to-prompt splits prompts), trailing punctuation left
out; where weights span several words, the tokenizer's own words (BPE pieces joined up to each end-of-word mark).
"""

from dataclasses import dataclass
from importlib import import_module
from typing import Any

from ..attention.prompt_tokens import TOKENIZER_ATTRIBUTES, prompt_token_chunks, word_positions

ROUTE = "/precise_edit/tokens"
MAX_TEXT_LENGTH = 20_000
END_OF_WORD = "</w>"
CHIP_PUNCTUATION = ",.;:!?\"'"

# The tokenizer object of each checkpoint family's CLIP (module, class); ``clip_tokenizer`` picks the one the nodes
# read positions from (CLIP-L for SD1.x and SDXL, CLIP-H for SD2.x).
FAMILIES = {
    "sd1": ("comfy.sd1_clip", "SD1Tokenizer"),
    "sd2": ("comfy.text_encoders.sd2_clip", "SD2Tokenizer"),
    "sdxl": ("comfy.sdxl_clip", "SDXLTokenizer"),
}

_tokenizers: dict[str, Any] = {}


@dataclass(frozen=True)
class TokenQuery:
    text: str
    family: str
    words: list[str]

    @classmethod
    def from_json(cls, body: Any) -> "TokenQuery":
        """Validate the request body; a ValueError names the field and what was expected."""
        if not isinstance(body, dict):
            raise ValueError("expected a JSON object with text, family and words")
        text, family, words = body.get("text", ""), body.get("family", "sd1"), body.get("words", [])
        if not isinstance(text, str) or len(text) > MAX_TEXT_LENGTH:
            raise ValueError(f"text: expected a string of at most {MAX_TEXT_LENGTH} characters")
        if family not in FAMILIES:
            raise ValueError(f"family: expected one of {', '.join(FAMILIES)}, got {family!r}")
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise ValueError("words: expected a list of strings")
        return cls(text, family, [w.strip() for w in words if w.strip()])


def family_tokenizer(family: str) -> Any:
    """The word-position tokenizer of ``family``'s CLIP, built once from ComfyUI's tokenizer files."""
    if family not in _tokenizers:
        import folder_paths

        module, name = FAMILIES[family]
        holder = getattr(import_module(module), name)(embedding_directory=folder_paths.get_folder_paths("embeddings"))
        _tokenizers[family] = next(
            getattr(holder, a) for a in TOKENIZER_ATTRIBUTES if getattr(holder, a, None) is not None
        )
    return _tokenizers[family]


def _is_special(tokenizer: Any, token: Any) -> bool:
    return isinstance(token, int) and token in (tokenizer.start_token, tokenizer.end_token, tokenizer.pad_token)


def _shown(tokenizer: Any, token: Any) -> str:
    return tokenizer.inv_vocab[token].removesuffix(END_OF_WORD) if isinstance(token, int) else "<embedding>"


def _chip_text(word: str) -> str:
    """A prompt word as a chip adds it: without the punctuation that ends a phrase ("glasses," → "glasses")."""
    return word.strip(CHIP_PUNCTUATION) or word


def prompt_words(tokenizer: Any, text: str, ordinary: list[int]) -> list[dict[str, Any]] | None:
    """The prompt's space-separated words with their token positions (each word tokenized alone, as prompt-to-prompt
    splits prompts), or None when the words' tokens do not add up to the prompt's (weights across words)."""
    words, offset = [], 0
    for word in text.split():
        count = sum(not _is_special(tokenizer, t) for chunk in prompt_token_chunks(tokenizer, word) for t in chunk)
        if count:
            words.append({"text": _chip_text(word), "positions": ordinary[offset : offset + count]})
        offset += count
    return words if offset == len(ordinary) else None


def bpe_words(tokenizer: Any, flat: list[Any], ordinary: list[int]) -> list[dict[str, Any]]:
    """Fallback chips: BPE pieces joined up to each end-of-word mark, punctuation left out."""
    words, piece, positions = [], "", []
    for position in ordinary:
        token = flat[position]
        if not isinstance(token, int):
            words.append({"text": None, "positions": [position]})
            continue
        piece, positions = piece + _shown(tokenizer, token), [*positions, position]
        if tokenizer.inv_vocab[token].endswith(END_OF_WORD):
            if any(c.isalnum() for c in piece):
                words.append({"text": piece, "positions": positions})
            piece, positions = "", []
    return words


def describe_prompt(tokenizer: Any, text: str, words: list[str]) -> dict[str, Any]:
    """The route's answer for one prompt (see the module docstring)."""
    chunks = prompt_token_chunks(tokenizer, text)
    flat = [token for chunk in chunks for token in chunk]
    ordinary = [i for i, token in enumerate(flat) if not _is_special(tokenizer, token)]
    found = word_positions(tokenizer, chunks, words)
    return {
        "context_length": len(flat),
        "tokens": [{"position": i, "text": _shown(tokenizer, flat[i])} for i in ordinary],
        "words": prompt_words(tokenizer, text, ordinary) or bpe_words(tokenizer, flat, ordinary),
        "found": {word: positions for word, positions in found.items() if positions},
        "missing": [word for word, positions in found.items() if not positions],
    }


async def tokens_handler(request: Any) -> Any:
    from aiohttp import web

    try:
        query = TokenQuery.from_json(await request.json())
    except ValueError as error:
        return web.json_response({"error": str(error)}, status=400)
    answer = describe_prompt(family_tokenizer(query.family), query.text, query.words)
    return web.json_response({"family": query.family, **answer})


def register_token_route() -> bool:
    """Add the route to ComfyUI's server once; False when no server runs (the in-process executor, scripts)."""
    try:
        from server import PromptServer
    except ImportError:
        return False
    server = getattr(PromptServer, "instance", None)
    if server is None:
        return False
    if not any(getattr(route, "path", None) == ROUTE for route in server.routes):
        server.routes.post(ROUTE)(tokens_handler)
    return True
