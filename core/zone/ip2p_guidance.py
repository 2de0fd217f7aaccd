"""InstructPix2Pix's three-way classifier-free guidance (Brooks et al., Eq. 3; ZONE §3, official code).

The model is run on three branches that share the noisy latent ``z_t``:

- text + image: instruction c_T and the source image latent c_I,
- ∅ + image: the null instruction with c_I,
- ∅ + ∅: the null instruction with an all-zero image latent,

and the guided prediction is

    ε̃ = ε(z_t, ∅, ∅) + s_T · (ε(z_t, c_I, c_T) − ε(z_t, c_I, ∅)) + s_I · (ε(z_t, c_I, ∅) − ε(z_t, ∅, ∅)),

with text guidance s_T (7.5 in ZONE) and image guidance s_I (1.5). The formula is affine with weights summing to one,
so it holds unchanged for the denoised predictions D = z − σ ε that ComfyUI's guiders combine.
"""

import torch


def instruct_pix2pix_guidance(
    text: torch.Tensor, image: torch.Tensor, uncond: torch.Tensor, *, text_scale: float, image_scale: float
) -> torch.Tensor:
    """``uncond + text_scale (text − image) + image_scale (image − uncond)`` for predictions of one latent."""
    if not text.shape == image.shape == uncond.shape:
        raise ValueError(
            f"the three branches must have one shape; got {tuple(text.shape)}, {tuple(image.shape)}, "
            f"{tuple(uncond.shape)}"
        )
    return uncond + text_scale * (text - image) + image_scale * (image - uncond)
