"""The Delta Mapper of DeltaEdit / DeltaSpace (Lyu et al.) and its training objective.

The mapper predicts an editing direction in a generator's conditioning space from a source code and a condition
built in CLIP DeltaSpace (paper Eq. 3, 5):

    Δs' = DeltaMapper(s_i, c),    c = [ĉ_i ‖ Δĉ],    Δĉ = (ĉ_j − ĉ_i) / ‖ĉ_j − ĉ_i‖,

with ĉ the L2-normalised CLIP image embeddings of two images. Each of three levels l ∈ {coarse, medium, fine} has
a Style Module, a Condition Module and a Fusion Module,

    e_l^s = SM_l(s_l),    e_l^c = CM_l(c),    Δs'_l = FM_l([e_l^s ‖ e_l^c]),    Δs' = [Δs'_c ‖ Δs'_m ‖ Δs'_f],

each a ``Mapper``: optional PixelNorm, then 4 EqualLinear layers (learning-rate multiplier 0.01) with the scaled
leaky ReLU after every layer, the last one included. The objective (Eq. 6) is

    L = ‖Δs' − Δs‖²  (mean over elements) + 1 − mean_batch cos(Δs', Δs),    Δs = s_j − s_i.

Levels. The official code (``Yueming6568/DeltaEdit:delta_mapper.py``) is written for StyleGAN2's 6048-channel
S-space: coarse = s[:1536] as 3 rows of 512 and medium = s[1536:3584] as 4 rows of 512 (one StyleGAN layer per
row, each level's three modules shared by its rows), fine = s[3584:] as one flat 2464 vector.
``DeltaMapperConfig.stylegan_s_space()`` is exactly that. A conditioning vector of another model (a CLIP-vision
``image_embeds``) has no layer rows, so ``DeltaMapperConfig.for_target`` splits it into three contiguous flat blocks
in the official proportions 1536 : 2048 : 2464 of the channels, each processed like the official fine level.

Quirks kept for parity with the official weights: PixelNorm averages over dim 1, which for a (batch, rows, width)
level is the *rows* axis; the final layer of every module, the fusion output included, ends with the leaky ReLU.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

STYLEGAN_ROW_WIDTH = 512
STYLEGAN_COARSE_ROWS = 3
STYLEGAN_MEDIUM_ROWS = 4
STYLEGAN_FINE_WIDTH = 2464
LEVEL_NAMES = ("coarse", "medium", "fine")


class PixelNorm(nn.Module):
    """``x / sqrt(mean(x², dim=1) + 1e-8)`` (rosinality StyleGAN2), over dim 1 whatever the rank."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(torch.mean(x**2, dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """Equalised-learning-rate linear layer with the fused leaky ReLU of StyleGAN2.

    Stored weight ``W ~ N(0, 1)/m`` and bias ``b = 0`` for a learning-rate multiplier ``m``; the layer computes
    ``√2 · leaky_relu(x (W · m/√in)ᵀ + b · m, 0.2)``, evaluated as ``leaky_relu(x (√2 W · m/√in)ᵀ + √2 b · m)``
    (the leaky ReLU is positively homogeneous), which saves two tensor operations per layer.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        lr_mul: float = 0.01,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        weight = torch.empty(out_dim, in_dim, device=device)
        if weight.device.type != "meta":
            weight = torch.randn(out_dim, in_dim, generator=generator).div_(lr_mul).to(device)
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.zeros(out_dim, device=device))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gain = math.sqrt(2.0)
        out = F.linear(x, self.weight * (gain * self.scale), self.bias * (gain * self.lr_mul))
        return F.leaky_relu(out, negative_slope=0.2)


class Mapper(nn.Module):
    """``[PixelNorm] + num_layers × EqualLinear``: the first maps in → out, the others out → out."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        norm: bool = True,
        num_layers: int = 4,
        lr_mul: float = 0.01,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [PixelNorm()] if norm else []
        for index in range(num_layers):
            layers.append(
                EqualLinear(
                    in_dim if index == 0 else out_dim, out_dim, lr_mul=lr_mul, generator=generator, device=device
                )
            )
        self.mapping = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mapping(x)


@dataclass(frozen=True)
class Level:
    """A contiguous block of the code: ``rows`` rows of ``width`` channels sharing weights, or flat when rows is 0."""

    rows: int
    width: int

    @property
    def size(self) -> int:
        return max(self.rows, 1) * self.width


@dataclass(frozen=True)
class DeltaMapperConfig:
    """Sizes of a Delta Mapper: the three levels of the target code and the condition size (2 × CLIP dim)."""

    coarse: Level
    medium: Level
    fine: Level
    condition_dim: int
    num_layers: int = 4
    lr_mul: float = 0.01

    @property
    def levels(self) -> tuple[Level, Level, Level]:
        return (self.coarse, self.medium, self.fine)

    @property
    def target_dim(self) -> int:
        return sum(level.size for level in self.levels)

    @property
    def clip_dim(self) -> int:
        return self.condition_dim // 2

    @classmethod
    def stylegan_s_space(cls, clip_dim: int = 512) -> DeltaMapperConfig:
        """The official configuration: StyleGAN2 S-space (6048) and CLIP ViT-B/32 (512)."""
        return cls(
            coarse=Level(STYLEGAN_COARSE_ROWS, STYLEGAN_ROW_WIDTH),
            medium=Level(STYLEGAN_MEDIUM_ROWS, STYLEGAN_ROW_WIDTH),
            fine=Level(0, STYLEGAN_FINE_WIDTH),
            condition_dim=2 * clip_dim,
        )

    @classmethod
    def for_target(cls, target_dim: int, clip_dim: int) -> DeltaMapperConfig:
        """Three flat levels over a ``target_dim`` vector in the official 1536 : 2048 : 2464 proportions.

        coarse = round(D · 1536/6048) channels, medium = round(D · 2048/6048), fine = the rest.
        """
        total = STYLEGAN_ROW_WIDTH * (STYLEGAN_COARSE_ROWS + STYLEGAN_MEDIUM_ROWS) + STYLEGAN_FINE_WIDTH
        coarse = round(target_dim * STYLEGAN_COARSE_ROWS * STYLEGAN_ROW_WIDTH / total)
        medium = round(target_dim * STYLEGAN_MEDIUM_ROWS * STYLEGAN_ROW_WIDTH / total)
        fine = target_dim - coarse - medium
        if min(coarse, medium, fine) < 1:
            raise ValueError(f"a Delta Mapper target needs at least 3 channels, got {target_dim}")
        if clip_dim < 1:
            raise ValueError(f"the CLIP dimension must be positive, got {clip_dim}")
        return cls(Level(0, coarse), Level(0, medium), Level(0, fine), condition_dim=2 * clip_dim)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DeltaMapperConfig:
        levels = {name: Level(**data[name]) for name in LEVEL_NAMES}
        return cls(
            **levels,
            condition_dim=int(data["condition_dim"]),
            num_layers=int(data.get("num_layers", 4)),
            lr_mul=float(data.get("lr_mul", 0.01)),
        )


class DeltaMapper(nn.Module):
    """Coarse/medium/fine Style, Condition and Fusion Modules (parameter names as in the official code)."""

    def __init__(
        self,
        config: DeltaMapperConfig,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.config = config

        def mapper(in_dim: int, out_dim: int, norm: bool = True) -> Mapper:
            return Mapper(
                in_dim,
                out_dim,
                norm=norm,
                num_layers=config.num_layers,
                lr_mul=config.lr_mul,
                generator=generator,
                device=device,
            )

        for name, level in zip(LEVEL_NAMES, config.levels, strict=True):
            self.add_module(f"sm_{name}", mapper(level.width, level.width))
        for name, level in zip(LEVEL_NAMES, config.levels, strict=True):
            self.add_module(f"cm_{name}", mapper(config.condition_dim, level.width))
        for name, level in zip(LEVEL_NAMES, config.levels, strict=True):
            self.add_module(f"fm_{name}", mapper(2 * level.width, level.width, norm=False))

    def forward(self, codes: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """codes ``[B, target_dim]``, condition ``[B, condition_dim]`` → predicted Δs ``[B, target_dim]``."""
        outputs = []
        start = 0
        for name, level in zip(LEVEL_NAMES, self.config.levels, strict=True):
            block = codes[:, start : start + level.size]
            start += level.size
            style = getattr(self, f"sm_{name}")
            embedded_condition = getattr(self, f"cm_{name}")(condition)
            fusion = getattr(self, f"fm_{name}")
            if level.rows:
                features = style(block.reshape(-1, level.rows, level.width))
                repeated = embedded_condition[:, None, :].expand(-1, level.rows, -1)
                fused = fusion(torch.cat([features, repeated], dim=2)).reshape(-1, level.size)
            else:
                fused = fusion(torch.cat([style(block), embedded_condition], dim=1))
            outputs.append(fused)
        return torch.cat(outputs, dim=1)


def delta_mapper_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``MSE(Δs', Δs) + 1 − mean cos(Δs', Δs)`` with both weights 1, as the paper and official training script."""
    return F.mse_loss(predicted, target) + 1.0 - F.cosine_similarity(predicted, target, dim=-1).mean()
