"""Unit tests of S2Edit's identity fine-tuning step (no ComfyUI): L = Σ_s ‖ε − ε_θ(x_t)‖² + λ |cos(e_P, e_[s])|."""

import math

import pytest
import torch

from precise_edit.core.attention.token_mask import masked_cross_attention
from precise_edit.core.s2edit.identity_objective import (
    NoisedLatent,
    SubjectTerm,
    draw_noised_latent,
    identity_step_loss,
)


def quarter(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return x / 4


def zeros(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(x)


def two_subjects(token: torch.Tensor | None = None) -> list[SubjectTerm]:
    """[I]: x₀ 0, ε 1, σ 2, ε̂ = x_t / 4 = 0.5 → L_recons 0.25; e_P (1, 0), e_[I] (1, 1) → |cos| 1/√2.
    [A]: x₀ (1, −1), ε (1, 0), σ 1, ε̂ = 0 → L_recons 0.5; e_P (0, 2), e_[A] (3, −4) → cos −0.8."""
    identity = SubjectTerm(
        sample=NoisedLatent(clean=torch.zeros(1, 1, 1, 2), noise=torch.ones(1, 1, 1, 2), sigma=torch.tensor([2.0])),
        predict_noise=quarter,
        prompt_embedding=torch.tensor([1.0, 0.0]),
        token_embedding=torch.tensor([1.0, 1.0]) if token is None else token,
    )
    attribute = SubjectTerm(
        sample=NoisedLatent(
            clean=torch.tensor([[[[1.0, -1.0]]]]), noise=torch.tensor([[[[1.0, 0.0]]]]), sigma=torch.tensor([1.0])
        ),
        predict_noise=zeros,
        prompt_embedding=torch.tensor([0.0, 2.0]),
        token_embedding=torch.tensor([3.0, -4.0]),
    )
    return [identity, attribute]


def test_the_step_loss_sums_reconstruction_and_lambda_cosine_over_subjects():
    loss = identity_step_loss(two_subjects(), 0.1)
    assert loss.reconstruction == pytest.approx(0.75, abs=1e-7)
    assert loss.cosines == pytest.approx((1 / math.sqrt(2), 0.8), abs=1e-7)
    assert float(loss.total) == pytest.approx(0.25 + 0.1 / math.sqrt(2) + 0.5 + 0.1 * 0.8, abs=1e-6)


def test_the_noise_predictor_sees_the_noised_latent_and_its_sigma():
    seen = []

    def record(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        seen.append((x.clone(), sigma.clone()))
        return torch.zeros_like(x)

    sample = NoisedLatent(
        clean=torch.tensor([[[[1.0, -1.0]]]]), noise=torch.tensor([[[[0.5, 2.0]]]]), sigma=torch.tensor([3.0])
    )
    term = SubjectTerm(
        sample=sample, predict_noise=record, prompt_embedding=torch.ones(2), token_embedding=torch.ones(2)
    )
    loss = identity_step_loss([term], 0.0)
    [(x, sigma)] = seen
    torch.testing.assert_close(x, torch.tensor([[[[2.5, 5.0]]]]))
    torch.testing.assert_close(sigma, torch.tensor([3.0]))
    assert loss.reconstruction == pytest.approx((0.25 + 4.0) / 2)


def test_without_lambda_the_cosine_is_measured_but_gives_no_gradient():
    token = torch.tensor([1.0, 1.0], requires_grad=True)
    loss = identity_step_loss(two_subjects(token), 0.0)
    assert float(loss.total) == pytest.approx(0.75, abs=1e-7)
    assert loss.cosines == pytest.approx((1 / math.sqrt(2), 0.8), abs=1e-7)
    assert not loss.total.requires_grad  # ε̂ does not depend on e_[I] here: nothing reaches it
    assert token.grad is None


def test_the_orthogonality_gradient_turns_the_token_and_keeps_its_length():
    """∂(λ|cos|)/∂e_[I] = λ sign(c) (e_P / (‖e_P‖‖e_[I]‖) − c e_[I] / ‖e_[I]‖²): for e_P (1, 0), e_[I] (1, 1),
    c = 1/√2, that is λ (1/(2√2), −1/(2√2)), orthogonal to e_[I]; e_P, a fixed prompt embedding, gets none."""
    token = torch.tensor([1.0, 1.0], requires_grad=True)
    terms = two_subjects(token)
    identity_step_loss(terms, 0.1).total.backward()
    half = 1 / (2 * math.sqrt(2))
    torch.testing.assert_close(token.grad, torch.tensor([0.1 * half, -0.1 * half]))
    assert float(token.grad @ token.detach()) == pytest.approx(0.0, abs=1e-8)
    assert terms[0].prompt_embedding.grad is None


def test_a_negative_cosine_is_pushed_up_towards_zero():
    token = torch.tensor([3.0, -4.0], requires_grad=True)
    attribute = two_subjects()[1]
    term = SubjectTerm(
        sample=attribute.sample,
        predict_noise=attribute.predict_noise,
        prompt_embedding=attribute.prompt_embedding,
        token_embedding=token,
    )
    identity_step_loss([term], 1.0).total.backward()
    # c = −0.8: −∂|c|/∂e = e_P/(‖e_P‖‖e‖) − c e/‖e‖² = (0, 0.2) + 0.8 (3, −4)/25 = (0.096, 0.072)
    torch.testing.assert_close(-token.grad, torch.tensor([0.096, 0.072]))


def masked_attention_term(token: torch.Tensor, noise: torch.Tensor, mask: torch.Tensor) -> SubjectTerm:
    """ε_θ = one cross-attention layer over the 2×2 latent's pixels, [I] (context token 1) masked by M as spatial
    control does (A*_[I] = A_[I] ⊙ M, not renormalised); [I]'s embedding is its attention value."""
    generator = torch.Generator().manual_seed(0)
    keys = torch.randn(1, 3, 2, generator=generator)
    others = torch.randn(1, 3, 2, generator=generator)

    def predict_noise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        queries = x.flatten(2).transpose(1, 2)  # [1, 4 pixels, 2 channels]
        values = torch.cat([others[:, :1], token.view(1, 1, 2), others[:, 2:]], dim=1)
        output, _ = masked_cross_attention(queries, keys, values, 1, token_indices=torch.tensor([1]), spatial_mask=mask)
        return output.transpose(1, 2).reshape(x.shape)

    sample = NoisedLatent(
        clean=torch.randn(1, 2, 2, 2, generator=torch.Generator().manual_seed(1)),
        noise=noise,
        sigma=torch.tensor([0.5]),
    )
    return SubjectTerm(
        sample=sample, predict_noise=predict_noise, prompt_embedding=torch.ones(2), token_embedding=token
    )


def token_gradient(noise: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    token = torch.tensor([0.3, -0.7], requires_grad=True)
    identity_step_loss([masked_attention_term(token, noise, mask)], 0.0).total.backward()
    return token.grad


def test_with_spatial_control_the_token_learns_only_from_pixels_inside_the_mask():
    """Through its attention value, [I] receives the reconstruction gradient only where M_obj = 1: changing the
    target noise outside the mask leaves it unchanged, inside it does not, and an empty mask gives none."""
    mask = torch.tensor([[1.0, 0.0, 0.0, 1.0]])  # pixels (0, 0) and (1, 1) of the 2×2 latent
    noise = torch.randn(1, 2, 2, 2, generator=torch.Generator().manual_seed(2))
    outside, inside = noise.clone(), noise.clone()
    outside[..., 0, 1] += 5.0
    inside[..., 0, 0] += 5.0
    reference = token_gradient(noise, mask)
    assert float(reference.abs().max()) > 1e-3
    torch.testing.assert_close(token_gradient(outside, mask), reference)
    assert not torch.allclose(token_gradient(inside, mask), reference)
    torch.testing.assert_close(token_gradient(noise, torch.zeros(1, 4)), torch.zeros(2))


def test_the_draw_takes_a_latent_then_a_noise_level_then_the_noise_from_the_generator():
    latents = torch.arange(3 * 4 * 2 * 2, dtype=torch.float32).view(3, 4, 2, 2)
    sigmas = torch.tensor([0.1, 0.5, 1.0, 2.0, 4.0])
    sample = draw_noised_latent(latents, sigmas, torch.Generator().manual_seed(7))
    generator = torch.Generator().manual_seed(7)
    pick = int(torch.randint(3, (1,), generator=generator))
    t = int(torch.randint(5, (1,), generator=generator))
    noise = torch.randn(1, 4, 2, 2, generator=generator)
    torch.testing.assert_close(sample.clean, latents[pick : pick + 1])
    torch.testing.assert_close(sample.sigma, sigmas[t].reshape(1))
    torch.testing.assert_close(sample.noise, noise)
    torch.testing.assert_close(sample.noisy, sample.clean + sigmas[t] * noise)


def test_a_step_needs_a_subject():
    with pytest.raises(ValueError, match="at least one subject"):
        identity_step_loss([], 0.1)
