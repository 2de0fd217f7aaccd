"""A synthetic world in which DeltaEdit's premise holds by construction, with every quantity known exactly.

Each image has k semantic attributes z ~ N(0, I_k) (what captions describe) and m details n ~ N(0, I_m) (what
they do not). With fixed random matrices (columns of A, B, E of norm ≈ 1, 0.7 and 0.1):

- CLIP image embedding:   ĉ(z, n) = normalize(μ_img + A z + B n)
- CLIP text embedding of a caption stating attributes a:   t(a) = normalize(μ_txt + (A + E) a)
- conditioning code:      s(z, n) = M [z; n] + W₂ tanh(W₁ [z; n])        (D = d = 64 channels)

μ_img and μ_txt are two different cone centres (‖μ‖ = 5): the modality gap. An image and its own caption are far
apart (cos ≈ 0.4), yet the *difference* of two captions points where the difference of the two images points
(cos ≈ 0.95): DeltaSpace is aligned, up to the gap's curvature and the text tower's own error E. The code space is
related to CLIP space by a known non-linear map (the sphere projection inverted, then M and the tanh layer), so
adding a CLIP direction to a code directly (the straightforward baseline) points nowhere useful.

An edit of a source image (z, n) by the caption change source "" → target "attribute a changed by δ" has the
true code change Δs = s(z + δ, n) − s(z, n) and the text direction Δt = t(δ) − t(0).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

CLIP_DIM = 64
ATTRIBUTES = 4
DETAILS = 2
CONE_NORM = 5.0
DETAIL_SCALE = 0.7
TEXT_ERROR = 0.1
NONLINEAR = 0.5
HIDDEN = 32
EDIT_SIZE = 1.5


@dataclass(frozen=True)
class Edits:
    """Held-out source images and one-attribute text edits with their ground truth."""

    codes: torch.Tensor
    clip: torch.Tensor
    text_directions: torch.Tensor
    image_directions: torch.Tensor
    true_deltas: torch.Tensor
    image_text_cosine: torch.Tensor


class DeltaWorld:
    def __init__(self, seed: int = 1) -> None:
        generator = torch.Generator().manual_seed(seed)

        def randn(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, generator=generator)

        d, k, m = CLIP_DIM, ATTRIBUTES, DETAILS
        self.generator = generator
        self.A = randn(d, k) / d**0.5
        self.B = randn(d, m) / d**0.5 * DETAIL_SCALE
        self.E = randn(d, k) / d**0.5 * TEXT_ERROR
        self.mu_image = F.normalize(randn(d), dim=0) * CONE_NORM
        self.mu_text = F.normalize(randn(d), dim=0) * CONE_NORM
        self.M = randn(d, k + m) / (k + m) ** 0.5
        self.W1 = randn(HIDDEN, k + m) / (k + m) ** 0.5
        self.W2 = randn(d, HIDDEN) / HIDDEN**0.5 * NONLINEAR

    def sample_latents(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randn(count, ATTRIBUTES, generator=self.generator), torch.randn(
            count, DETAILS, generator=self.generator
        )

    def image_clip(self, z: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mu_image + z @ self.A.T + n @ self.B.T, dim=-1)

    def text_clip(self, attributes: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mu_text + attributes @ (self.A + self.E).T, dim=-1)

    def code(self, z: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        x = torch.cat([z, n], dim=-1)
        return x @ self.M.T + torch.tanh(x @ self.W1.T) @ self.W2.T

    def training_images(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes ``[N, D]`` and CLIP image embeddings ``[N, d]``: all a text-free trainer sees."""
        z, n = self.sample_latents(count)
        return self.code(z, n), self.image_clip(z, n)

    def text_edits(self, count: int) -> Edits:
        """Unseen images, each edited by a caption change that moves one random attribute by ±EDIT_SIZE."""
        z, n = self.sample_latents(count)
        delta = torch.zeros(count, ATTRIBUTES)
        attribute = torch.randint(ATTRIBUTES, (count,), generator=self.generator)
        sign = torch.where(torch.rand(count, generator=self.generator) < 0.5, -1.0, 1.0)
        delta[torch.arange(count), attribute] = EDIT_SIZE * sign
        neutral = torch.zeros(count, ATTRIBUTES)
        return Edits(
            codes=self.code(z, n),
            clip=self.image_clip(z, n),
            text_directions=self.text_clip(delta) - self.text_clip(neutral),
            image_directions=self.image_clip(z + delta, n) - self.image_clip(z, n),
            true_deltas=self.code(z + delta, n) - self.code(z, n),
            image_text_cosine=F.cosine_similarity(self.image_clip(z, n), self.text_clip(z), dim=-1),
        )
