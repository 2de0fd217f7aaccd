"""The joint-attention maths against an explicit full softmax (no ComfyUI)."""

import pytest
import torch

from precise_edit.core.attention.joint_attention import image_text_probabilities, text_column_correction


def joint_qkv(batch: int = 2, heads: int = 3, tokens: int = 23, dim: int = 8, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, heads, tokens, dim, generator=generator) for _ in range(3))


@pytest.mark.parametrize("chunk", [1, 4, 1024])
def test_image_text_block_equals_the_full_softmax_normalised_over_all_keys(chunk):
    q, k, _ = joint_qkv()
    full = torch.softmax(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5, dim=-1)
    block = image_text_probabilities(q, k, 5, slice(5, 17), chunk=chunk)
    assert block.shape == (2, 3, 12, 5)
    torch.testing.assert_close(block, full[:, :, 5:17, :5], rtol=1e-5, atol=1e-7)
    assert torch.all(block.sum(-1) < 1.0), "the image and reference keys keep the rest of each row"


@pytest.mark.parametrize("kind", ["bool", "additive_batch", "additive_2d"])
def test_masks_enter_the_normaliser_as_the_kernel_applies_them(kind):
    q, k, _ = joint_qkv(seed=1)
    generator = torch.Generator().manual_seed(2)
    if kind == "bool":
        mask = torch.rand(2, 1, 23, 23, generator=generator) > 0.3
        mask[..., 0] = True
        additive = torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))
    elif kind == "additive_batch":
        mask = torch.randn(2, 23, 23, generator=generator)
        additive = mask[:, None]
    else:
        mask = torch.randn(23, 23, generator=generator)
        additive = mask[None, None]
    full = torch.softmax(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5 + additive, dim=-1)
    block = image_text_probabilities(q, k, 5, slice(5, 17), mask=mask, chunk=5)
    torch.testing.assert_close(block, full[:, :, 5:17, :5], rtol=1e-5, atol=1e-7)


def test_text_column_correction_gives_the_output_of_the_edited_probabilities():
    q, k, v = joint_qkv(seed=3)
    full = torch.softmax(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5, dim=-1)
    edited = full.clone()
    edited[:, :, 5:17, 2] *= 0.25
    old = full[:, :, 5:17, :5]
    corrected = (full @ v)[:, :, 5:17] + text_column_correction(edited[:, :, 5:17, :5], old, v[:, :, :5])
    torch.testing.assert_close(corrected, (edited @ v)[:, :, 5:17], rtol=1e-5, atol=1e-6)
