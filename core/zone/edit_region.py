"""ZONE's rough edit region M_b from InstructPix2Pix's cross-attention (Li et al., Eq. 4; ``msk_from_attn.py``).

From the attention maps averaged over steps, heads, layers and the null-instruction branches, the first token's
(start-of-text) map A_1 and the last token's (the instruction's end-of-text position) map A_L are each scaled to
0–255 by their maximum and truncated to integers, as the released code casts them to uint8:

    Â_i = ⌊255 · A_i / max A_i⌋,
    D = max(Â_1 − Â_L, 0)                         (cv2.subtract saturates at 0),

D is resized to the image (bicubic, Keys a = −0.5 as Pillow, rounded to integers) and

    M_b = 1 where D < T, 0 elsewhere.

The paper sets T = 128. The released code thresholds ``convertScaleAbs(D, alpha=2) > 108`` and inverts the result
(``bitwise_not``), i.e. M_b = {D ≤ 54} = {D < 55}. The start token takes most of the attention away from the edited
object, the end-of-text token concentrates on it, so D is high on the background and saturates to 0 on the object.
D is 0 where A_L peaks, so M_b is empty only when the end-token map is zero everywhere.
"""

import torch
import torch.nn.functional as F

PAPER_THRESHOLD = 128
RELEASED_THRESHOLD = 55  # {D ≤ 54}: 2·D ≤ 108 before the released code's bitwise NOT


def byte_scaled(maps: torch.Tensor) -> torch.Tensor:
    """``⌊255 · A / max A⌋`` per ``[H, W]`` map (all-zero maps stay zero), as float integers."""
    peak = maps.flatten(-2).amax(-1)[..., None, None]
    return torch.floor(255.0 * maps / peak.clamp_min(torch.finfo(maps.dtype).tiny)).clamp(0, 255)


def attention_difference(bos: torch.Tensor, eos: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """D ``[B, H, W]`` on the 0–255 integer scale at ``size`` from token maps ``[B, h, w]`` on the attention grid."""
    if bos.shape != eos.shape or bos.dim() != 3:
        raise ValueError(f"bos and eos must be [B, h, w] maps of one shape; got {tuple(bos.shape)}, {tuple(eos.shape)}")
    difference = (byte_scaled(bos.float()) - byte_scaled(eos.float())).clamp_min(0)
    resized = F.interpolate(difference[:, None], size=size, mode="bicubic", align_corners=False, antialias=True)
    return resized[:, 0].round().clamp(0, 255)


def edit_region(difference: torch.Tensor, threshold: float) -> torch.Tensor:
    """M_b = ``difference < threshold`` (bool)."""
    return difference < threshold
