"""Unit tests of the pure-torch attention machinery (no ComfyUI)."""

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from precise_edit.core.attention.cross_attention import (
    attention_output,
    attention_probabilities,
    merge_heads,
    output_correction,
    split_heads,
)
from precise_edit.core.attention.heatmap import heatmap
from precise_edit.core.attention.token_grid import mask_to_token_grid
from precise_edit.core.attention.token_mask import mask_token_probabilities, masked_cross_attention


def qkv(batch: int = 2, tq: int = 12, tk: int = 7, heads: int = 2, dim: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, t, heads * dim, generator=g) for t in (tq, tk, tk))


def test_probabilities_and_output_match_scaled_dot_product_attention():
    q, k, v = qkv()
    probs = attention_probabilities(q, k, heads=2)
    assert probs.shape == (2, 2, 12, 7)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 2, 12))
    reference = merge_heads(F.scaled_dot_product_attention(split_heads(q, 2), split_heads(k, 2), split_heads(v, 2)))
    torch.testing.assert_close(attention_output(probs, v), reference, atol=1e-6, rtol=1e-5)


def test_mask_zeroes_only_the_chosen_tokens_outside_the_mask():
    q, k, _ = qkv()
    probs = attention_probabilities(q, k, heads=2)
    mask = torch.zeros(1, 12)
    mask[0, :5] = 1.0
    tokens = torch.tensor([2, 4])
    masked = mask_token_probabilities(probs, tokens, mask)
    assert torch.all(masked[:, :, 5:, :][..., tokens] == 0)
    assert torch.equal(masked[:, :, :5], probs[:, :, :5])
    others = [i for i in range(7) if i not in (2, 4)]
    assert torch.equal(masked[..., others], probs[..., others])


def test_strength_blends_toward_no_mask_and_renormalize_restores_row_sums():
    q, k, _ = qkv()
    probs = attention_probabilities(q, k, heads=2)
    mask = torch.rand(2, 12, generator=torch.Generator().manual_seed(1))
    tokens = torch.tensor([1])
    assert torch.equal(mask_token_probabilities(probs, tokens, mask, strength=0.0), probs)
    half = mask_token_probabilities(probs, tokens, mask, strength=0.5)
    torch.testing.assert_close(half[..., 1], probs[..., 1] * (0.5 + 0.5 * mask)[:, None, :])
    renormalized = mask_token_probabilities(probs, tokens, mask, renormalize=True)
    torch.testing.assert_close(renormalized.sum(-1), torch.ones(2, 2, 12))


def test_correction_of_a_plain_attention_output_equals_masked_attention_from_scratch():
    q, k, v = qkv(seed=3)
    mask = (torch.rand(2, 12, generator=torch.Generator().manual_seed(2)) > 0.5).float()
    tokens = torch.tensor([0, 3, 6])
    expected, masked = masked_cross_attention(q, k, v, 2, token_indices=tokens, spatial_mask=mask)
    probs = attention_probabilities(q, k, 2)
    plain = attention_output(probs, v)
    torch.testing.assert_close(plain + output_correction(masked, probs, v, tokens), expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(plain + output_correction(masked, probs, v, None), expected, atol=1e-6, rtol=1e-5)


def test_all_ones_mask_gives_a_zero_correction():
    q, k, v = qkv(seed=4)
    probs = attention_probabilities(q, k, 2)
    masked = mask_token_probabilities(probs, torch.tensor([1, 2]), torch.ones(1, 12))
    assert torch.count_nonzero(output_correction(masked, probs, v, torch.tensor([1, 2]))) == 0


def test_mask_to_token_grid_averages_each_token_footprint_for_any_aspect_ratio():
    mask = torch.zeros(1, 64, 96)
    mask[:, :32, :48] = 1.0
    mask[:, 40:44, 80:96] = 1.0
    grid = mask_to_token_grid(mask, (4, 6)).view(4, 6)
    expected = torch.zeros(4, 6)
    expected[:2, :3] = 1.0
    expected[2, 5] = 0.25
    assert torch.equal(grid, expected)


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(1, 40),
    width=st.integers(1, 40),
    grid_h=st.integers(1, 12),
    grid_w=st.integers(1, 12),
    seed=st.integers(0, 10_000),
)
def test_tokens_whose_footprint_is_outside_the_mask_get_exactly_zero_attention(height, width, grid_h, grid_w, seed):
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(1, height, width, generator=g) > 0.6).float()
    grid_mask = mask_to_token_grid(mask, (grid_h, grid_w))
    assert grid_mask.shape == (1, grid_h * grid_w) and grid_mask.min() >= 0 and grid_mask.max() <= 1
    q = torch.randn(1, grid_h * grid_w, 8, generator=g)
    k = torch.randn(1, 5, 8, generator=g)
    masked = mask_token_probabilities(attention_probabilities(q, k, 2), torch.tensor([1, 3]), grid_mask)
    outside = grid_mask[0] == 0
    assert torch.all(masked[0][:, outside][..., [1, 3]] == 0)


def test_heatmap_runs_blue_to_red():
    colours = heatmap(torch.tensor([[[0.0, 0.5, 1.0]]]))
    torch.testing.assert_close(colours[0, 0], torch.tensor([[0.0, 0.0, 0.5], [0.5, 1.0, 0.5], [0.5, 0.0, 0.0]]))
