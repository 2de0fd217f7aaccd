"""Fit an image to a model's size grid without cropping it: ZONE's pre-processing, and its inverse.

ZONE's released code (``ptp_utils.check_image_size``, lsl001006/ZONE@9788584) scales an image whose longest side l
exceeds N so that the longest side becomes N and the other side s becomes ⌊s·N/l⌋, then pads each side with black
up to the next multiple of m:

    pad = ⌈s/m⌉·m − s,   ⌊pad/2⌋ before and pad − ⌊pad/2⌋ after (centred).

Un-padding crops the same rectangle back out, so pad → un-pad returns the scaled image exactly.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

PLACEMENTS = ("center", "right_bottom")


@dataclass(frozen=True)
class PaddedLayout:
    """Where a scaled image sits inside its padded canvas, and the size it came from."""

    original_height: int
    original_width: int
    height: int
    width: int
    top: int
    left: int
    padded_height: int
    padded_width: int

    @property
    def bottom(self) -> int:
        return self.padded_height - self.top - self.height

    @property
    def right(self) -> int:
        return self.padded_width - self.left - self.width


def scaled_size(height: int, width: int, longest_side: int, enlarge: bool) -> tuple[int, int]:
    """(h, w) with the longest side N and the other ⌊s·N/l⌋ (at least 1); unchanged when it fits and not ``enlarge``."""
    longest = max(height, width)
    if longest <= longest_side and not enlarge:
        return height, width
    if height >= width:
        return longest_side, max(1, width * longest_side // height)
    return max(1, height * longest_side // width), longest_side


def padded_layout(
    height: int, width: int, *, longest_side: int, multiple: int, placement: str = "center", enlarge: bool = False
) -> PaddedLayout:
    """The layout of a ``height`` × ``width`` image scaled to ``longest_side`` and padded to a ``multiple``."""
    if min(height, width, longest_side, multiple) < 1:
        raise ValueError(
            f"sizes must be positive: image {height}×{width}, longest_side {longest_side}, multiple {multiple}"
        )
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
    scaled_height, scaled_width = scaled_size(height, width, longest_side, enlarge)
    padded_height = -(-scaled_height // multiple) * multiple
    padded_width = -(-scaled_width // multiple) * multiple
    centred = placement == "center"
    return PaddedLayout(
        original_height=height,
        original_width=width,
        height=scaled_height,
        width=scaled_width,
        top=(padded_height - scaled_height) // 2 if centred else 0,
        left=(padded_width - scaled_width) // 2 if centred else 0,
        padded_height=padded_height,
        padded_width=padded_width,
    )


def pad_to_layout(images: torch.Tensor, layout: PaddedLayout, value: float = 0.0) -> torch.Tensor:
    """``images`` [..., h, w] (already at the layout's scaled size) placed in a canvas filled with ``value``."""
    if tuple(images.shape[-2:]) != (layout.height, layout.width):
        raise ValueError(
            f"the image is {tuple(images.shape[-2:])} (H, W) but the layout expects {(layout.height, layout.width)}"
        )
    return F.pad(images, (layout.left, layout.right, layout.top, layout.bottom), value=value)


def crop_to_layout(images: torch.Tensor, layout: PaddedLayout) -> torch.Tensor:
    """The scaled image cut back out of padded ``images`` [..., H, W]."""
    if tuple(images.shape[-2:]) != (layout.padded_height, layout.padded_width):
        raise ValueError(
            f"the image is {tuple(images.shape[-2:])} (H, W) but it was padded to "
            f"{(layout.padded_height, layout.padded_width)}"
        )
    return images[..., layout.top : layout.top + layout.height, layout.left : layout.left + layout.width]
