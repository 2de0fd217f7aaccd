"""Parity with diffusers: the tiny SD1.5 UNet converted to a diffusers UNet2DConditionModel gives the same noise
prediction as our patched ComfyUI model when its cross-attention processors apply S2Edit's masking, written here
independently of the pack's core (diffusers' own attention scores, box-averaged mask, ``A*[I] = A[I] ⊙ M``)."""

import pytest
import torch
from attention_helpers import PROMPT, encode, inject, left_half_mask
from diffusers_unet import to_diffusers_unet

LATENT_HW = (8, 12)


def box_average(mask: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``[B, H, W]`` → ``[B, h·w]``: the mean of the mask over each token's H/h × W/w footprint (whole factors)."""
    batch, height, width = mask.shape
    rows, cols = grid
    assert height % rows == 0 and width % cols == 0, "the reference needs whole downscale factors"
    return mask.reshape(batch, rows, height // rows, cols, width // cols).mean(dim=(2, 4)).reshape(batch, -1)


class MaskedCrossAttentionProcessor:
    """diffusers attention processor for attn2 layers: ``A*[I] = A[I] ⊙ M`` on the layer's token grid, from
    diffusers' own ``get_attention_scores`` (softmax of the scaled scores) and head reshapes."""

    def __init__(self, tokens: list[int], mask: torch.Tensor, grids: dict[int, tuple[int, int]]) -> None:
        self.tokens = torch.tensor(tokens)
        self.mask = mask
        self.grids = grids

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        query = attn.head_to_batch_dim(attn.to_q(hidden_states))
        key = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
        value = attn.head_to_batch_dim(attn.to_v(encoder_hidden_states))
        probs = attn.get_attention_scores(query, key, None)  # [batch·heads, Tq, Tk]
        grid_mask = box_average(self.mask.float(), self.grids[hidden_states.shape[1]])
        factor = grid_mask.repeat_interleave(attn.heads, dim=0)[:, :, None]
        probs = probs.clone()
        probs[:, :, self.tokens] = probs[:, :, self.tokens] * factor
        out = attn.batch_to_head_dim(torch.bmm(probs, value))
        return attn.to_out[1](attn.to_out[0](out))


@pytest.fixture(scope="module")
def diffusers_unet(sd15):
    return to_diffusers_unet(sd15.model, LATENT_HW[0])


def comfy_noise_prediction(model, x, sigma, context):
    options = dict(model.model_options.get("transformer_options", {}))
    options.update(cond_or_uncond=[0], sigmas=sigma)
    timestep = model.get_model_object("model_sampling").timestep(sigma)
    return model.model.diffusion_model(x, timestep, context=context, transformer_options=options), timestep


@pytest.mark.parametrize("masked", [False, True])
def test_noise_prediction_matches_diffusers(sd15, diffusers_unet, masked):
    from diffusers.models.attention_processor import AttnProcessor

    mask = left_half_mask()
    model = inject(sd15.model, sd15.clip, "cat, hat", mask)[0] if masked else sd15.model
    processors = {}
    for name in diffusers_unet.attn_processors:
        if masked and name.endswith("attn2.processor"):
            grids = {
                LATENT_HW[0] * LATENT_HW[1] >> 2 * level: (LATENT_HW[0] >> level, LATENT_HW[1] >> level)
                for level in (0, 1)
            }
            processors[name] = MaskedCrossAttentionProcessor([5, 9], mask, grids)
        else:
            processors[name] = AttnProcessor()
    diffusers_unet.set_attn_processor(processors)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, *LATENT_HW, generator=g)
    sigma = torch.tensor([3.0])
    context = encode(sd15.clip, PROMPT)[0][0].float()
    with torch.no_grad():
        ours, timestep = comfy_noise_prediction(model, x, sigma, context)
        theirs = diffusers_unet(x, timestep, encoder_hidden_states=context).sample
    assert ours.abs().max() > 0.1
    difference = (ours - theirs).abs().max()
    assert difference <= 1e-4, f"max |ε_comfy − ε_diffusers| = {difference:.3g}"
    if masked:
        unmasked, _ = comfy_noise_prediction(sd15.model, x, sigma, context)
        assert (ours - unmasked).abs().max() > 1e-3
