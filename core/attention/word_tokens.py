"""Where a word sits in a tokenized prompt.

A prompt is a flat token sequence (CLIP ids, or embedding vectors where the prompt names an embedding); a word
or phrase is its own token sequence (several ids when BPE splits it, several vectors for a multi-vector
embedding). Its positions are every index covered by a contiguous occurrence of that sequence.
"""

from collections.abc import Sequence

import torch

Token = int | torch.Tensor


def _same_token(a: Token, b: Token) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    return a == b


def find_token_positions(prompt: Sequence[Token], word: Sequence[Token]) -> list[int]:
    """All positions of ``prompt`` covered by an occurrence of the run ``word``, ascending (empty if absent)."""
    span = len(word)
    if span == 0:
        return []
    positions: list[int] = []
    for start in range(len(prompt) - span + 1):
        if all(_same_token(prompt[start + i], word[i]) for i in range(span)):
            positions.extend(range(start, start + span))
    return sorted(set(positions))
