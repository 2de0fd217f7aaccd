"""Which token of the source prompt each token of the target prompt takes its cross-attention from
(prompt-to-prompt, Hertz et al. 2022, ``seq_aligner.py``).

Both prompts are token sequences of the same length L (77 per CLIP chunk, padding included).

**Replacement** (the prompts have the same words, some of them swapped: "a cat" → "a tiger"): a matrix
M ∈ R^{L×L} with the target's probabilities ``A*[:, t] = Σ_s A_src[:, s] · M[s, t]``. Each word pair (S, T) of
source and target token positions contributes

    M[S_k, T_k] = 1                       when |S| = |T| (token k to token k),
    M[s, t] = 1 / |T|  for s ∈ S, t ∈ T   otherwise (the word's total attention spread over the new tokens).

Special tokens (start, end, padding) are paired in order, and target specials beyond the source's count take the
source's last one. Unlike the official code, the pairing goes on word by word after the last swapped word too (the
official loop maps position j to j there, which misaligns the rest of a prompt whose swapped words changed length).

**Refinement** (words added or removed: "a cat" → "a silver cat"): a global alignment (Needleman–Wunsch, match +1,
mismatch −1, gap 0) of the two sequences gives for each target token t a source token m(t), or none. Then

    A*[:, t] = α_t · A_src[:, m(t)] + (1 − α_t) · A_tgt[:, t],      α_t = 1 if t is aligned, else 0.

Ties are broken as in the official ``global_align`` (left, then up, then diagonal). The official code aligns the
unpadded sequences and maps the target's padding to the same position; here the whole padded sequences are
aligned, which pairs padding with padding also when the prompts differ in length.
"""

from collections.abc import Hashable, Sequence

import torch

MATCH, MISMATCH, GAP = 1, -1, 0


def replacement_mapper(
    word_pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
    source_specials: Sequence[int],
    target_specials: Sequence[int],
    length: int,
) -> torch.Tensor:
    """M ``[L, L]`` (source × target) from the word pairs' token positions and the special tokens' positions."""
    mapper = torch.zeros(length, length)
    for source, target in word_pairs:
        if not source or not target:
            raise ValueError("every word must have at least one token in both prompts")
        if len(source) == len(target):
            mapper[list(source), list(target)] = 1.0
        else:
            for t in target:
                mapper[list(source), t] = 1.0 / len(target)
    if target_specials and not source_specials:
        raise ValueError("the source prompt has no special tokens to pair with the target's")
    for k, t in enumerate(target_specials):
        mapper[source_specials[min(k, len(source_specials) - 1)], t] = 1.0
    return mapper


def refinement_mapper(source: Sequence[Hashable], target: Sequence[Hashable]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(m, α)``: for each target token its aligned source token (long ``[L_tgt]``, 0 where unaligned) and
    α (float ``[L_tgt]``, 1 where aligned, 0 where the target token is new)."""
    rows, cols = len(source), len(target)
    score = [[0] * (cols + 1) for _ in range(rows + 1)]
    # Traceback: 1 = left (target token unaligned), 2 = up (source token dropped), 3 = diagonal (aligned).
    trace = [[0] * (cols + 1) for _ in range(rows + 1)]
    for j in range(1, cols + 1):
        score[0][j], trace[0][j] = j * GAP, 1
    for i in range(1, rows + 1):
        score[i][0], trace[i][0] = i * GAP, 2
    for i in range(1, rows + 1):
        for j in range(1, cols + 1):
            left = score[i][j - 1] + GAP
            up = score[i - 1][j] + GAP
            diagonal = score[i - 1][j - 1] + (MATCH if source[i - 1] == target[j - 1] else MISMATCH)
            best = max(left, up, diagonal)
            score[i][j] = best
            trace[i][j] = 1 if best == left else 2 if best == up else 3
    mapper = torch.zeros(cols, dtype=torch.long)
    alphas = torch.zeros(cols)
    i, j = rows, cols
    while i > 0 or j > 0:
        step = trace[i][j]
        if step == 3:
            i, j = i - 1, j - 1
            mapper[j], alphas[j] = i, 1.0
        elif step == 1:
            j -= 1
        else:
            i -= 1
    return mapper, alphas
