"""The diffusion reconstruction loss of DreamBooth-style fine-tuning (ε-prediction).

For a clean latent x₀, noise ε ~ N(0, I) and a noise level σ_t of a random timestep t, the noisy sample in σ-space
is x_t = x₀ + σ_t ε (the variance-exploding form of √ᾱ_t x₀ + √(1−ᾱ_t) ε, divided by √ᾱ_t), and a denoiser that
returns x̂₀ gives ε̂ = (x_t − x̂₀) / σ_t. The loss is

    L_recons = E_{x₀, ε, t} ‖ε − ε_θ(x_t, t, c)‖²,

averaged over elements (``mean``), as in DreamBooth / Textual Inversion training.
"""

import torch


def noisy_sample(clean: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``x_t = x₀ + σ ε`` with one σ per batch element (``sigma``: ``[B]``)."""
    return clean + noise * sigma.view(-1, *([1] * (clean.dim() - 1)))


def predicted_noise(noisy: torch.Tensor, denoised: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``ε̂ = (x_t − x̂₀) / σ``."""
    return (noisy - denoised) / sigma.view(-1, *([1] * (noisy.dim() - 1)))


def epsilon_loss(predicted: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``mean ‖ε − ε̂‖²`` in float32."""
    return torch.mean((predicted.float() - noise.float()) ** 2)
