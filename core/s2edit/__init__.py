"""S2Edit: identity-token fine-tuning with semantic and spatial control, then null-text inversion + prompt-to-prompt.

Paper: "S²Edit: Text-Guided Image Editing with Precise Semantic and Spatial Control", Xudong Liu, Zikun Chen,
Ruowei Jiang, Ziyi Wu, Kejia Yin, Han Zhao, Parham Aarabi, Igor Gilitschenski, 2025, arXiv 2507.04584. Its inference
stack: null-text inversion (Mokady et al., CVPR 2023, arXiv 2211.09794) and prompt-to-prompt (Hertz et al. 2022,
arXiv 2208.01626). A learnable identity token [I] is fine-tuned on one image with a reconstruction loss plus an
orthogonality constraint; its cross-attention is confined to the object; the image is then inverted and edited.
Equation numbers could not be checked against the PDF, so the equations are named, in the paper's order.

Index (equation → function):
- L_recons = E‖ε − ε_θ(x_t, t, c)‖², x_t = x₀ + σ_t ε → diffusion_loss.epsilon_loss (diffusion_loss.noisy_sample,
  diffusion_loss.predicted_noise)
- L_semantic = ‖Proj_{e_P}(e_[I])‖ = |cos(e_P, e_[I])|; L = L_recons + λ L_semantic, λ = 0.1
                                             → orthogonality_loss.semantic_loss (orthogonality_loss.absolute_cosine)
- one fine-tuning step L = Σ_s L_recons,s + λ |cos(e_P, e_[s])| over the subjects [I] (and [A])
                                             → identity_objective.identity_step_loss (its draw of x₀, t, ε:
  identity_objective.draw_noised_latent)
- spatial control A*_[I] = A_[I] ⊙ M_obj     → core/attention: token_mask.mask_token_probabilities
- M_obj = 1[Ā / max Ā ≥ τ] from the noun's cross-attention (τ = 0.3) → identity_mask.attention_object_mask
- DDIM inversion, x' = x + (σ' − σ) ε̂      → ddim_inversion.ddim_invert (ddim_inversion.ddim_step,
  ddim_inversion.inversion_step, ddim_inversion.inversion_trajectory, ddim_inversion.ddim_schedule)
- rectified-flow inversion (x_σ = (1 − σ) x₀ + σ ε, v = ε − x₀), x_k = x_{k−1} + (σ_k − σ_{k−1}) v̂(x_{k−1}, σ_k)
  → flow_inversion.flow_invert (flow_inversion.flow_inversion_step, flow_inversion.flow_schedule)
- null-text inversion, CFG ε̃ = ε_∅ + w(ε_c − ε_∅) → null_text_inversion.optimise_null_text
  (null_text_inversion.classifier_free_guidance; replay: null_text_inversion.guided_ddim_sample)
- P2P replace E = (A_src M)·e, refine E = (α ⊙ A_src[:, m] + (1 − α) ⊙ A_tgt)·e, reweight e
  → prompt_to_prompt.replace_probabilities, prompt_to_prompt.refine_probabilities, prompt_to_prompt.equalizer;
  per step prompt_to_prompt.CrossAttentionEdit; schedules prompt_to_prompt.cross_replace_alpha (c_{i,j}),
  prompt_to_prompt.self_replace_steps
- P2P token maps M and (m, α)              → token_alignment.replacement_mapper, token_alignment.refinement_mapper
- P2P LocalBlend x_tgt ← x_src + m ⊙ (x_tgt − x_src) → local_blend.blend_mask, local_blend.blend_latents
- the [source, target] replay from the inverted noise → prompt_to_prompt_sampling.prompt_to_prompt_sample

Modules:
- diffusion_loss.py — DreamBooth-style ε-prediction loss L_recons in σ-space.
- orthogonality_loss.py — S2Edit's semantic control |cos(e_P, e_[I])| weighted by λ.
- identity_objective.py — one identity fine-tuning step: the draw, ε_θ's reconstruction and the λ term, summed.
- identity_mask.py — the automatic object mask M_obj from the subject noun's cross-attention.
- ddim_inversion.py — deterministic DDIM sampling and inversion in ComfyUI's σ-parameterisation.
- flow_inversion.py — the deterministic flow ODE of a velocity (CONST) model run from the image up to noise.
- null_text_inversion.py — null-text optimisation and guided DDIM sampling from the inverted latent.
- prompt_to_prompt.py — P2P cross-attention replace / refine / reweight and their step schedules.
- token_alignment.py — which source token each target token takes its attention from (P2P seq_aligner).
- local_blend.py — P2P LocalBlend: keep the source latent outside the blend words' region.
- prompt_to_prompt_sampling.py — guided DDIM replay of the batch [source, target] with the edits.
"""
