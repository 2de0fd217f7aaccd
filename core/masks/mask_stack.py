"""Binary mask stacks from the layouts other packs produce.

Any of ``[H, W]``, ``[N, H, W]``, ``[N, 1, H, W]``, or a list/tuple of those (concatenated in order), in bool,
integer or floating dtype, becomes one bool ``[N, H, W]`` stack:

    bool: as is;    integer (uint8 0/1 or 0/255, …): inside where ≠ 0;    floating: inside where > 0.5.
"""

from collections.abc import Sequence

import torch


def as_mask_batch(mask: torch.Tensor, name: str) -> torch.Tensor:
    """``[H, W]``, ``[N, H, W]`` or ``[N, 1, H, W]`` as a ``[N, H, W]`` view (values and dtype unchanged)."""
    if mask.dim() == 4 and mask.shape[1] == 1:
        mask = mask[:, 0]
    elif mask.dim() == 2:
        mask = mask[None]
    if mask.dim() != 3:
        raise ValueError(f"{name} must be [H, W], [N, H, W] or [N, 1, H, W]; got shape {tuple(mask.shape)}")
    return mask


def _as_stack(mask: torch.Tensor, name: str) -> torch.Tensor:
    mask = as_mask_batch(mask, name)
    if mask.dtype == torch.bool:
        return mask
    if mask.is_floating_point():
        if torch.isnan(mask).any():
            raise ValueError(f"{name} contains NaN values")
        return mask > 0.5
    if mask.dtype.is_complex:
        raise ValueError(f"{name} must be a bool, integer or real mask, got {mask.dtype}")
    return mask != 0


def mask_stack(masks: torch.Tensor | Sequence[torch.Tensor], name: str) -> torch.Tensor:
    """The bool ``[N, H, W]`` stack of ``masks``; errors name ``name`` and say what was expected."""
    parts = [masks] if isinstance(masks, torch.Tensor) else list(masks)
    if not parts:
        raise ValueError(f"{name} is an empty list: expected at least one mask")
    stacks = []
    for index, part in enumerate(parts):
        label = name if isinstance(masks, torch.Tensor) else f"{name}[{index}]"
        if not isinstance(part, torch.Tensor):
            raise ValueError(f"{label} must be a torch tensor, got {type(part).__name__}")
        stacks.append(_as_stack(part, label))
    sizes = {tuple(stack.shape[-2:]) for stack in stacks}
    if len(sizes) > 1:
        raise ValueError(f"the masks of {name} differ in size (H, W): {sorted(sizes)}")
    stack = torch.cat([stack.to(stacks[0].device) for stack in stacks])
    if stack.shape[0] == 0 or stack.shape[1] == 0 or stack.shape[2] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(stack.shape)})")
    return stack
