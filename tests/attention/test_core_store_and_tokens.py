"""Unit tests of the attention store and of word → token lookup (no ComfyUI)."""

import pytest
import torch
import torch.nn.functional as F

from precise_edit.core.attention.attention_store import AttentionStore
from precise_edit.core.attention.word_tokens import find_token_positions


def step_probs(step: int, batch: int = 1, heads: int = 2, tq: int = 6, tk: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(step)
    return torch.softmax(torch.randn(batch, heads, tq, tk, generator=g), -1)


def test_running_mean_equals_the_mean_over_steps_and_heads():
    store = AttentionStore()
    samples = [step_probs(s) for s in range(7)]
    for probs in samples:
        store.add("input_1_0", probs, (2, 3))
    expected = torch.stack(samples).mean(dim=(0, 2))
    torch.testing.assert_close(store.layers["input_1_0"].mean, expected)
    assert store.layers["input_1_0"].count == 7


def test_selected_heads_are_averaged_alone():
    store = AttentionStore()
    probs = step_probs(0, heads=4)
    store.add("l", probs, (2, 3), heads=[1, 3])
    torch.testing.assert_close(store.layers["l"].mean, probs[:, [1, 3]].mean(1))


def test_memory_does_not_grow_with_steps():
    store = AttentionStore()
    store.add("l", step_probs(0), (2, 3))
    size_after_one = sum(e.mean.numel() for e in store.layers.values())
    for s in range(1, 50):
        store.add("l", step_probs(s), (2, 3))
    assert sum(e.mean.numel() for e in store.layers.values()) == size_after_one


def test_token_maps_sum_word_tokens_and_average_layers_at_any_size():
    store = AttentionStore(words={"cat": [1, 2]})
    coarse = torch.zeros(1, 1, 4, 4)
    coarse[..., 0, 1] = 1.0
    coarse[..., 3, 2] = 1.0
    fine = torch.zeros(1, 1, 16, 4)
    fine[..., :8, 1] = 1.0
    store.add("coarse", coarse, (2, 2))
    store.add("fine", fine, (4, 4))
    maps = store.word_maps((4, 4))
    coarse_word_map = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    expected_coarse = F.interpolate(coarse_word_map, size=(4, 4), mode="bilinear", align_corners=False)[0, 0]
    expected_fine = torch.tensor([[1.0] * 4] * 2 + [[0.0] * 4] * 2)
    torch.testing.assert_close(maps[0, 0], (expected_coarse + expected_fine) / 2)
    torch.testing.assert_close(store.word_maps((4, 4), layers=["fine"])[0, 0], expected_fine)


def test_store_errors_name_the_problem():
    store = AttentionStore()
    with pytest.raises(ValueError, match="no attention recorded"):
        store.token_maps([[0]], (4, 4))
    store.add("l", step_probs(0), (2, 3))
    with pytest.raises(ValueError, match="grid"):
        store.add("l", step_probs(1), (4, 4))
    with pytest.raises(ValueError, match="batch or prompt length changed"):
        store.add("l", step_probs(1, batch=2), (2, 3))
    store.reset()
    assert not store.layers


def test_word_positions_cover_multi_token_words_and_every_occurrence():
    prompt = [49406, 320, 1125, 539, 320, 2368, 267, 320, 2368, 49407]
    assert find_token_positions(prompt, [2368]) == [5, 8]
    assert find_token_positions(prompt, [320, 2368]) == [4, 5, 7, 8]
    assert find_token_positions(prompt, [999]) == []
    assert find_token_positions(prompt, []) == []


def test_embedding_vectors_match_by_value():
    vectors = torch.randn(2, 8, generator=torch.Generator().manual_seed(0))
    prompt = [49406, 320, vectors[0].clone(), vectors[1].clone(), 2368, 49407]
    assert find_token_positions(prompt, [vectors[0], vectors[1]]) == [2, 3]
    assert find_token_positions(prompt, [vectors[1], vectors[0]]) == []
    assert find_token_positions(prompt, [torch.zeros(8)]) == []
