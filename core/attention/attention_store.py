"""Running means of cross-attention maps.

For a layer ℓ with token grid ``h_ℓ × w_ℓ``, every recorded call contributes the head-averaged probabilities
``Ā = mean_{h∈heads} A[:, h]`` (``[B, Tq, Tk]``). The store keeps, per layer, the running mean over calls
(steps):

    μ_n = μ_{n−1} + (Ā_n − μ_{n−1}) / n,

so its memory is one ``[B, Tq, Tk]`` tensor per layer whatever the number of steps. A word's map at layer ℓ is
the sum of μ over the word's token columns, reshaped to ``h_ℓ × w_ℓ``; maps of several layers are resized to a
common size and averaged.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass
class LayerMean:
    """Running mean of one layer's head-averaged probabilities."""

    grid: tuple[int, int]
    mean: torch.Tensor
    count: int = 1


@dataclass
class AttentionStore:
    """Per-layer running means of cross-attention probabilities, plus the words they were captured for."""

    words: dict[str, list[int]] = field(default_factory=dict)
    layers: dict[str, LayerMean] = field(default_factory=dict)

    def reset(self) -> None:
        self.layers.clear()

    def add(self, layer: str, probs: torch.Tensor, grid: tuple[int, int], heads: Sequence[int] | None = None) -> None:
        """Record ``probs`` ``[B, H, Tq, Tk]`` of ``layer`` (averaged over ``heads``, all when None)."""
        if grid[0] * grid[1] != probs.shape[2]:
            raise ValueError(f"layer {layer}: grid {grid} does not hold {probs.shape[2]} query tokens")
        selected = probs if heads is None else probs[:, list(heads)]
        sample = selected.detach().mean(dim=1).float()
        entry = self.layers.get(layer)
        if entry is None:
            self.layers[layer] = LayerMean(grid, sample.clone())
            return
        if entry.mean.shape != sample.shape:
            raise ValueError(
                f"layer {layer}: attention of shape {tuple(sample.shape)} cannot join the running mean of shape "
                f"{tuple(entry.mean.shape)} (batch or prompt length changed within one sampling run)"
            )
        entry.count += 1
        # Out of place: the mean may have been created under ComfyUI's inference mode and be updated outside it.
        entry.mean = entry.mean + (sample - entry.mean) / entry.count

    def token_maps(
        self, token_groups: Sequence[Sequence[int]], size: tuple[int, int], layers: Sequence[str] | None = None
    ) -> torch.Tensor:
        """Maps ``[B, G, H, W]`` at ``size``: for each group of token indices, ``Σ_{t∈group} μ[..., t]`` per layer,
        bilinearly resized and averaged over ``layers`` (all recorded layers when None)."""
        names = list(self.layers) if layers is None else list(layers)
        missing = [name for name in names if name not in self.layers]
        if missing or not names:
            raise ValueError(f"no attention recorded for layers {missing or names}; recorded: {list(self.layers)}")
        total: torch.Tensor | None = None
        for name in names:
            entry = self.layers[name]
            columns = [torch.as_tensor(group, dtype=torch.long, device=entry.mean.device) for group in token_groups]
            per_group = torch.stack([entry.mean.index_select(-1, c).sum(-1) for c in columns], dim=1)
            grid_maps = per_group.view(per_group.shape[0], len(columns), *entry.grid)
            resized = F.interpolate(grid_maps, size=size, mode="bilinear", align_corners=False)
            total = resized if total is None else total + resized
        assert total is not None
        return total / len(names)

    def word_maps(self, size: tuple[int, int], layers: Sequence[str] | None = None) -> torch.Tensor:
        """Maps ``[B, len(words), H, W]`` of the captured words, in the order they were given."""
        return self.token_maps(list(self.words.values()), size, layers)
