"""DeltaEdit: text-free training of a Delta Mapper in CLIP DeltaSpace, and text-driven edits of conditioning codes.

Paper: "DeltaSpace: A Semantic-aligned Feature Space for Flexible Text-guided Image Editing", Yueming Lyu, Kang Zhao,
Bo Peng, Huafeng Chen, Yue Jiang, Yingya Zhang, Jing Dong, Caifeng Shan, arXiv 2310.08785 (2023), the extended
version of DeltaEdit (CVPR 2023); equation numbers below are DeltaSpace's. A Delta Mapper learns to map the
difference of two images' CLIP image embeddings to the difference of their codes; at inference a CLIP text
difference Δt takes its place. Here the codes are a diffusion model's conditioning embeddings, not StyleGAN's S-space.

Index (equation → function):
- §3.1 DeltaSpace directions: Δi = ĉ_j − ĉ_i; Δt from 79 prompt templates → clip_delta.image_direction,
  clip_delta.text_direction (clip_delta.prompt_embedding)
- Eq. 3 (training: Δs' = DeltaMapper(s_i, [ĉ_i ‖ Δĉ]), Δs = s_j − s_i) → delta_mapper.DeltaMapper; pairs and
  condition: delta_training.sample_pairs, delta_training.delta_condition
- Eq. 4 (inference: Δs' from the text direction Δt) → delta_edit.predict_delta
- Eq. 5 (coarse / medium / fine Style, Condition and Fusion Modules) → delta_mapper.DeltaMapper (delta_mapper.Mapper,
  levels: delta_mapper.DeltaMapperConfig)
- Eq. 6 (L = ‖Δs' − Δs‖² + 1 − cos(Δs', Δs)) → delta_mapper.delta_mapper_loss; loop: delta_training.train_delta_mapper
- Eq. 7 (generate from s' = s + Δs')          → delta_edit.apply_delta (s' = s + α Δs')
- §3.2 Disentanglement (Δs_k ← 0 where |R_k · Δt| < τ) → delta_relevance.disentangle, delta_relevance.relevant_channels;
  R estimated from the training data (beyond the paper's StyleCLIP fs3) → delta_relevance.estimate_relevance
- §3.1 straightforward baseline without a mapper (Δs' = ‖s‖ Δ) → delta_edit.straightforward_delta

Modules:
- clip_delta.py — text and image directions Δt, Δi in CLIP DeltaSpace.
- delta_mapper.py — the Delta Mapper (official parameter names) and its objective (Eq. 3, 5, 6).
- delta_training.py — text-free training on random image pairs (code scale σ, Adam).
- delta_relevance.py — per-channel relevance rows R and the disentanglement threshold.
- delta_edit.py — a trained model and the edit it applies to conditioning codes (Eq. 4, 7).
- joint_clip.py — the joint text–image CLIP (transformers CLIPModel) read from safetensors.
- mapper_file.py — the Delta Mapper file format: weights, relevance rows and a JSON config in one safetensors file.
"""
