"""The image-embedding adapter of the Multi-Conditioned Diffusion Model (MCDM, Chen et al. 2024, §3.3).

The image embedding c_im = MLP([E(x_A), CLIP_im(x_A)]) is built as in the released ``Embedding_Adapter``:

    v   = vae2clip(flatten_hw(MaxPool2d(2)(z_A)))            z_A: 4×64×64 scaled VAE latent → v: 4×768
    c   = [CLIP_im(x_A) ; v]                                   CLIP ViT-B/32 last_hidden_state 50×768 → c: 54×768
    c_im = (linear1(cᵀ))ᵀ                                      a Linear across the token axis, 54 → 50 tokens

``linear1`` starts as eye(50, 54), so an untrained adapter passes the 50 CLIP tokens through and drops the VAE
tokens. The cross-attention context is [c_p ; c_im]: 77 text tokens followed by 50 image tokens (127 tokens).

Parameter names (``vae2clip.weight``, ``vae2clip.bias``, ``linear1.weight``, ``linear1.bias``) are the release's, so
its ``adapter.pth`` state dict loads unchanged (after stripping a DataParallel ``module.`` prefix).

Latent sizes other than 64×64: the release was trained at 512² only, where MaxPool2d(2) gives a 32×32 grid whose
1024 cells feed ``vae2clip``. Here the pooling is ``adaptive_max_pool2d`` to that grid, which is exactly
MaxPool2d(2) on a 64×64 latent and, for any other size, takes the maximum over the 32×32 adaptive windows (for
latents smaller than 32 the windows overlap and repeat cells).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

OFFICIAL_CLIP_TOKENS = 50
OFFICIAL_VAE_CELLS = 1024
OFFICIAL_WIDTH = 768
OFFICIAL_OUTPUT_TOKENS = 50


@dataclass(frozen=True, kw_only=True)
class AdapterConfig:
    """Shapes of an adapter: CLIP tokens in, latent channels, pooled cells per channel, token width, tokens out."""

    clip_tokens: int = OFFICIAL_CLIP_TOKENS
    latent_channels: int = 4
    vae_cells: int = OFFICIAL_VAE_CELLS
    width: int = OFFICIAL_WIDTH
    output_tokens: int = OFFICIAL_OUTPUT_TOKENS

    @property
    def vae_grid(self) -> int:
        return math.isqrt(self.vae_cells)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, torch.Tensor], latent_channels: int = 4) -> AdapterConfig:
        """The shapes implied by an adapter state dict (release or ours)."""
        for key in ("vae2clip.weight", "linear1.weight"):
            if key not in state_dict:
                raise ValueError(f"the adapter weights have no {key!r} (keys: {sorted(state_dict)[:6]})")
        width, cells = state_dict["vae2clip.weight"].shape
        output_tokens, tokens_in = state_dict["linear1.weight"].shape
        return cls(
            clip_tokens=tokens_in - latent_channels,
            latent_channels=latent_channels,
            vae_cells=cells,
            width=width,
            output_tokens=output_tokens,
        )


def strip_module_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` prefix DataParallel/DDP checkpoints carry (the release's ``adapter.pth`` has it)."""
    return {key.removeprefix("module."): value for key, value in state_dict.items()}


class MCDMAdapter(torch.nn.Module):
    """CLIP vision tokens + VAE latent → ``output_tokens`` image tokens of the cross-attention context."""

    def __init__(self, config: AdapterConfig | None = None) -> None:
        super().__init__()
        self.config = config or AdapterConfig()
        grid = self.config.vae_grid
        if grid * grid != self.config.vae_cells:
            raise ValueError(f"vae2clip takes {self.config.vae_cells} inputs, which is not a square pooled grid")
        self.vae2clip = torch.nn.Linear(self.config.vae_cells, self.config.width)
        tokens_in = self.config.clip_tokens + self.config.latent_channels
        self.linear1 = torch.nn.Linear(tokens_in, self.config.output_tokens)
        with torch.no_grad():
            self.linear1.weight.copy_(torch.eye(self.config.output_tokens, tokens_in))

    def vae_tokens(self, latent: torch.Tensor) -> torch.Tensor:
        """Scaled VAE latent ``[B, C, h, w]`` → ``[B, C, width]``: max-pool to the grid, flatten, ``vae2clip``."""
        grid = self.config.vae_grid
        pooled = F.adaptive_max_pool2d(latent, (grid, grid))
        return self.vae2clip(pooled.flatten(2))

    def forward(self, clip_tokens: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """c_im ``[B, output_tokens, width]`` from CLIP ``last_hidden_state`` ``[B, N, width]`` and the latent."""
        expected = (self.config.clip_tokens, self.config.width)
        if tuple(clip_tokens.shape[1:]) != expected:
            raise ValueError(
                f"the CLIP vision hidden states are {tuple(clip_tokens.shape[1:])}, the adapter expects {expected} "
                "(CLIP ViT-B/32 last_hidden_state: 50 tokens of width 768)"
            )
        if latent.shape[1] != self.config.latent_channels:
            raise ValueError(
                f"the latent has {latent.shape[1]} channels, the adapter expects {self.config.latent_channels}"
            )
        tokens = torch.cat([clip_tokens, self.vae_tokens(latent.to(clip_tokens.dtype))], dim=1)
        return self.linear1(tokens.transpose(1, 2)).transpose(1, 2)


def build_adapter(
    state_dict: dict[str, torch.Tensor] | None = None, config: AdapterConfig | None = None
) -> MCDMAdapter:
    """An adapter with the given (release or ours) weights, or freshly initialised for ``config``."""
    if state_dict is None:
        return MCDMAdapter(config)
    state_dict = strip_module_prefix(state_dict)
    adapter = MCDMAdapter(AdapterConfig.from_state_dict(state_dict))
    missing, unexpected = adapter.load_state_dict(state_dict, strict=False)
    if missing or unexpected:
        raise ValueError(f"the adapter weights do not fit: missing {missing}, unexpected {unexpected}")
    return adapter.float()


def mcdm_context(text: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
    """The cross-attention context [c_p ; c_im]: text tokens ``[B, T, D]`` then image tokens ``[B, 50, D]``.

    A batch of one on either side is broadcast to the other's batch.
    """
    batch = max(text.shape[0], image_tokens.shape[0])
    if min(text.shape[0], image_tokens.shape[0]) not in (1, batch):
        raise ValueError(f"text batch {text.shape[0]} and image-token batch {image_tokens.shape[0]} do not match")
    text, image_tokens = text.expand(batch, -1, -1), image_tokens.expand(batch, -1, -1)
    return torch.cat([text, image_tokens.to(text)], dim=1)
