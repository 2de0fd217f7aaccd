"""Cross-attention with explicit probabilities: the shared maths of the attention edits and records.

No paper of its own. Multi-head attention A = softmax(QKᵀ/√d), O = AV (ZONE writes it as Eq. 3, arXiv 2312.16794) is
computed with its probabilities A made explicit, so that S2Edit (Liu et al. 2025, arXiv 2507.04584), prompt-to-prompt
(Hertz et al. 2022, arXiv 2208.01626) and ZONE can mask, rebuild or record them. The ComfyUI patch that calls these
functions lives in nodes/attention/; the prompt-to-prompt rebuild rules live in core/s2edit/.

Index (equation → function):
- A = softmax(QKᵀ/√d) per head (ZONE Eq. 3)      → cross_attention.attention_probabilities
- O = AV, heads split and merged                  → cross_attention.attention_output, cross_attention.split_heads,
                                                     cross_attention.merge_heads
- O* = AV + (A* − A)V: an edit as a correction of any attention output → cross_attention.output_correction
- S2Edit spatial control A*_[I] = A_[I] ⊙ M_obj, with strength s: A_[I] ⊙ (1 − s(1 − M))
                                                  → token_mask.mask_token_probabilities
  (reference O* = A*V computed from scratch       → token_mask.masked_cross_attention)
- an image mask on a layer's h × w token grid by area averaging → token_grid.mask_to_token_grid
- running mean μ_n = μ_{n−1} + (Ā_n − μ_{n−1}) / n of head-averaged maps (P2P's AttentionStore, kept as a mean)
                                                  → attention_store.AttentionStore (a layer: attention_store.LayerMean)
- a DiT's joint attention: image-query × text-key block of A normalised over all keys, ℓ_i = logsumexp_j in query
  chunks                                          → joint_attention.image_text_probabilities
- O*_i = O_i + Σ_t (A*[i, t] − A[i, t]) v_t on the text columns → joint_attention.text_column_correction
- the token positions of a word in a prompt      → word_tokens.find_token_positions
- "jet" colours of a map in [0, 1], for previews → heatmap.heatmap

Modules:
- cross_attention.py — A = softmax(QKᵀ/√d), O = AV and the correction (A* − A)V.
- joint_attention.py — word-to-pixel probabilities of a DiT's joint [text, image, reference] attention and their
  output correction.
- token_mask.py — masking chosen tokens' columns of A by a spatial mask (S2Edit's spatial control).
- token_grid.py — a mask of any size brought to a UNet layer's token grid.
- attention_store.py — per-layer running means of cross-attention maps and the words they were captured for.
- word_tokens.py — where a word (a run of token ids or embedding vectors) sits in a tokenized prompt.
- heatmap.py — colour heat maps for previewing attention maps.
"""
