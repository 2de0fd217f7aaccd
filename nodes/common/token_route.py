"""The token view's server route: a prompt's tokens, and where given words sit in it, as the word nodes find them.

``POST /precise_edit/tokens`` with ``{"text": ..., "family": "sd1" | "sd2" | "sdxl", "words": [...]}`` answers
``{"family", "context_length", "tokens": [{"position", "text"}], "words": [{"text", "positions"}],
"found": {word: positions}, "missing": [word, ...]}``. It tokenizes with ComfyUI's own tokenizer of that family (the
CLIP-L/H/G tokenizer files under ``comfy/``, embeddings read from ``models/embeddings``) and looks words up with the
same function the nodes use (``nodes.attention.prompt_tokens.word_positions``), so a word the view marks as missing
is one the node would refuse. ``words`` in the answer are the prompt's words as the tokenizer splits them (BPE
pieces joined up to each end-of-word mark), the chips the web extension shows.
"""

from dataclasses import dataclass
from importlib import import_module
from typing import Any

from ..attention.prompt_tokens import TOKENIZER_ATTRIBUTES, prompt_token_chunks, word_positions

ROUTE = "/precise_edit/tokens"
MAX_TEXT_LENGTH = 20_000
END_OF_WORD = "</w>"

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


def _token_text(tokenizer: Any, token: Any) -> str | None:
    """A token id's vocabulary entry (with its end-of-word mark); None for an embedding vector."""
    return tokenizer.inv_vocab[token] if isinstance(token, int) else None


def describe_prompt(tokenizer: Any, text: str, words: list[str]) -> dict[str, Any]:
    """The answer of the route for one prompt (see the module docstring)."""
    chunks = prompt_token_chunks(tokenizer, text)
    special = {tokenizer.start_token, tokenizer.end_token, tokenizer.pad_token}
    tokens, chips, piece, piece_positions = [], [], "", []
    for position, token in enumerate(t for chunk in chunks for t in chunk):
        if isinstance(token, int) and token in special:
            continue
        entry = _token_text(tokenizer, token)
        shown = "<embedding>" if entry is None else entry.removesuffix(END_OF_WORD)
        tokens.append({"position": position, "text": shown})
        if entry is None:
            chips.append({"text": None, "positions": [position]})
            continue
        piece, piece_positions = piece + shown, [*piece_positions, position]
        if entry.endswith(END_OF_WORD):
            if any(c.isalnum() for c in piece):
                chips.append({"text": piece, "positions": piece_positions})
            piece, piece_positions = "", []
    found = word_positions(tokenizer, chunks, words)
    return {
        "context_length": sum(len(chunk) for chunk in chunks),
        "tokens": tokens,
        "words": chips,
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
    """Add the route to ComfyUI's server; False when no server runs (the in-process executor, scripts)."""
    try:
        from server import PromptServer
    except ImportError:
        return False
    server = getattr(PromptServer, "instance", None)
    if server is None:
        return False
    server.routes.post(ROUTE)(tokens_handler)
    return True
