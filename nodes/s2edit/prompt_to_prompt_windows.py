"""The ``word_cross_replace`` input of Prompt-to-Prompt Edit: per-word cross-replace windows, as the official
``cross_replace_steps`` dict ({"default_": 0.8, "smile": 0.4, "hair": (0.1, 0.6)}) written as text.

``"smile: 0.4, red hair: 0.1-0.6"`` gives "smile" the window (0, 0.4) and "red hair" the window (0.1, 0.6); every
other token keeps the ``cross_replace`` window. Words are looked up in the target prompt with the connected CLIP's
tokenizer (a phrase or an ``embedding:name`` works as in ``word_weights``).
"""

from collections.abc import Callable

from comfy.sd import CLIP

from ...core.s2edit.prompt_to_prompt import Window, word_entries
from ..attention.prompt_tokens import WordPositions, locate_words

INPUT = "word_cross_replace"
SYNTAX = '"word: end" or "word: start-end", comma-separated, e.g. "smile: 0.4, red hair: 0.1-0.6"'


def _fraction(text: str, word: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0.0 <= value <= 1.0:
        raise ValueError(
            f"{INPUT}: the window of {word!r} has {text.strip()!r}, not a fraction of the steps between 0 and 1; "
            f"expected {SYNTAX}"
        )
    return value


def parse_word_windows(text: str) -> dict[str, Window]:
    """``"smile: 0.4, red hair: 0.1-0.6"`` → ``{"smile": (0.0, 0.4), "red hair": (0.1, 0.6)}``; empty: no words."""
    windows: dict[str, Window] = {}
    for _, word, bounds in word_entries(text, INPUT, SYNTAX):
        first, dash, second = bounds.partition("-")
        start, end = (_fraction(first, word), _fraction(second, word)) if dash else (0.0, _fraction(first, word))
        if start > end:
            raise ValueError(f"{INPUT}: the window of {word!r} starts at {start}, after its end {end}")
        if word in windows:
            raise ValueError(f"{INPUT}: {word!r} has two windows; give each word once")
        windows[word] = (start, end)
    return windows


def word_windows(
    clip: CLIP,
    target_text: str,
    text: str,
    locate: Callable[[CLIP, str, str], WordPositions] = locate_words,
) -> list[tuple[list[int], Window]]:
    """The target prompt's token positions of each word of ``text``, with its window, in the order given
    (``locate``: how words are found among the model's text tokens)."""
    located = []
    for word, window in parse_word_windows(text).items():
        try:
            positions = locate(clip, target_text, word).all_positions
        except ValueError as error:
            raise ValueError(f"{INPUT}: in the target prompt, {error}") from None
        located.append((positions, window))
    return located
