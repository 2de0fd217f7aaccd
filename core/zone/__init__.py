"""ZONE: zero-shot local editing from an instruction, localised in InstructPix2Pix's cross-attention.

Paper: "ZONE: Zero-Shot Instruction-Guided Local Editing", Shanglin Li, Bohan Zeng, Yutang Feng, Sicheng Gao,
Xuhui Liu, Jiaming Liu, Li Lin, Xu Tang, Yao Hu, Jianzhuang Liu, Baochang Zhang, CVPR 2024, arXiv 2312.16794.
An instruction edit (InstructPix2Pix fused with MagicBrush) is localised from the null branches' cross-attention
(rough mask M_b), refined to one SAM segment by Region-IoU (M_f), and blended back with an FFT edge smoother.

Index (equation → function):
- Eq. 2 (IP2P three-way guidance, Brooks et al. Eq. 3) → ip2p_guidance.instruct_pix2pix_guidance
- Eq. 3 (softmax(QKᵀ/√d)·V) → core/attention: cross_attention.attention_probabilities, attention_store.AttentionStore
- Eq. 4 (M_b = 1[A_1 − A_L < T]) → edit_region.attention_difference, edit_region.edit_region, edit_region.byte_scaled
- Eq. 5 (z_{t−1} = (z*_{t−1} + β z'_{t−1}) / (1 + β)) → fused_guidance.fuse_predictions
- §4 overview: the action (change / add / remove) picks β and the image SAM segments → action_classifier.ActionMLP,
  action_classifier.released_decision, action_classifier.mean_decision, action_classifier.train_action_mlp;
  by keyword rules: instruction_rules.classify_instruction
- Eq. 6 (Region-IoU R(j), k = argmax_j R(j), M_f = S_k) → region_iou.region_iou, region_iou.select_region
- §4.3 the segments S_1 … S_N (SAM "everything") → sam_everything.segment_everything; SAM from its state dict:
  sam_architecture.sam_from_state_dict
- Eq. 7–8 (edge smoother e = g(F⁻¹(H(F(I_L,d)) − H(F(I_G,d)))), ideal low-pass H of radius D₀) and the §4.4
  layer blending                             → fft_edge_smoother.smooth_and_composite (fft_edge_smoother.low_pass,
  fft_edge_smoother.low_pass_mask, fft_edge_smoother.gray)
- released pre-processing (longest side N, pad to a multiple of 32) → image_padding.padded_layout,
  image_padding.pad_to_layout, image_padding.crop_to_layout
- beyond the paper: M_b from an image difference, for any editor → difference_locator.difference_mask

Modules:
- ip2p_guidance.py — InstructPix2Pix's three-way classifier-free guidance.
- edit_region.py — the rough edit region M_b from the BOS and EOS attention maps (Eq. 4).
- fused_guidance.py — the IP2P + MagicBrush blend of Eq. 5, applied to denoised predictions.
- action_classifier.py — the released MLP that picks change / add / remove, its decision rules and its trainer.
- instruction_rules.py — a transparent keyword classifier of instructions into the same three actions.
- region_iou.py — Region-IoU selection of the segment that best matches M_b (Eq. 6).
- sam_everything.py — SAM's automatic mask generation stacked into one mask batch.
- sam_architecture.py — Segment Anything rebuilt from nothing but its state dict.
- fft_edge_smoother.py — the FFT edge smoother and layer blending (Eq. 7–8).
- image_padding.py — ZONE's scale-and-pad pre-processing and its inverse.
- difference_locator.py — a rough edit mask from the difference between an original and an edited image.
"""
