"""MCDM: portrait editing learnt from generated pairs with a Multi-Conditioned Diffusion Model.

Paper: "Learning Feature-Preserving Portrait Editing from Generated Pairs", Bowei Chen, Tiancheng Zhi, Peihao Zhu,
Shen Sang, Jing Liu, Linjie Luo, 2024, arXiv 2407.20455. Source/target pairs are generated side by side on one
double-width canvas with composable diffusion; MCDM (8-channel conv_in + an image-embedding adapter) is trained on
them and edits with multi-condition guidance, masked by a DiffEdit mask computed from MCDM itself.

Index (equation → function):
- Eq. 1 (§3.1 multi-condition CFG, extended to c_im, c_s, c_p with s1, s2, s3) → guidance.mcdm_guidance
- Eq. 2 (§3.2 composable diffusion on the canvas [x_A, x_B] with half masks M_a, M_b)
                                                → composable_canvas.combine_noise, composable_canvas.combine_denoised
  (composable_canvas.half_masks, composable_canvas.guided, composable_canvas.split_canvas)
- §3.3 c_im = adapter(CLIP_im(x_A), E(x_A)); context [c_p ; c_im] → adapter.MCDMAdapter, adapter.mcdm_context
- §3.3 L = E‖ε − ε_θ([z_t ; E(x_A)], t, [c_p ; c_im])‖² → training.mcdm_loss (training.diffuse,
  condition dropout: training.dropout_buckets; the optimiser loop: training.MCDMTraining)
- §3.4 DiffEdit mask (Couairon et al. 2023, arXiv 2210.11427) on MCDM → diffedit_mask.difference_map,
  diffedit_mask.diffedit_mask (timestep: diffedit_mask.encode_timestep)
- Eq. 3 (§3.4 mask-guided ε̂ = ε̃(p_b) ⊙ M + ε̃(p_a) ⊙ (1 − M)) → guidance.mask_guided,
  guidance.masked_mcdm_guidance (five UNet branches)
- the training pairs in the official folder layout → pairs_folder.load_pairs, pairs_folder.append_pairs

Modules:
- guidance.py — MCDM's multi-condition classifier-free guidance (Eq. 1) and the mask-guided combination (Eq. 3).
- composable_canvas.py — composable diffusion on a double-width canvas, the paired-data generator (Eq. 2).
- adapter.py — the image-embedding adapter and the 77 + 50 token cross-attention context (§3.3).
- training.py — one MCDM training step, condition dropout and resumable bookkeeping (§3.3).
- diffedit_mask.py — DiffEdit's editing mask computed with MCDM's guidance (§3.4).
- pairs_folder.py — a folder of training pairs in the official layout, read, validated and appended to.
"""
