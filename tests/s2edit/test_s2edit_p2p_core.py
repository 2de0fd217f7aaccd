"""Unit tests of the prompt-to-prompt maths (no ComfyUI): token mappers, step windows, equaliser, local blend."""

import pytest
import torch

from precise_edit.core.s2edit.local_blend import blend_latents, blend_mask, blend_start_step
from precise_edit.core.s2edit.prompt_to_prompt import (
    CrossAttentionEdit,
    alpha_runs,
    cross_replace_alpha,
    cross_replace_steps,
    equalizer,
    parse_word_weights,
    self_replace_steps,
)
from precise_edit.core.s2edit.token_alignment import refinement_mapper, replacement_mapper


def probabilities(images: int = 2, length: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(images, 2, 6, length, generator=g), dim=-1)


def test_replacement_maps_token_to_token_and_spreads_a_longer_word():
    # source: <s> a cat sat <e> <p> <p> <p>; target: <s> a ti ger sat <e> <p> <p>
    pairs = [((1,), (1,)), ((2,), (2, 3)), ((3,), (4,))]
    mapper = replacement_mapper(pairs, (0, 4, 5, 6, 7), (0, 5, 6, 7), 8)
    expected = torch.zeros(8, 8)
    for s, t in ((0, 0), (1, 1), (3, 4), (4, 5), (5, 6), (6, 7)):
        expected[s, t] = 1.0
    expected[2, 2] = expected[2, 3] = 0.5
    assert torch.equal(mapper, expected)
    source = probabilities(1)[0]
    replaced = source @ mapper
    torch.testing.assert_close(replaced[..., 3], source[..., 2] / 2)
    assert torch.equal(replaced[..., 4], source[..., 3])


def test_extra_target_specials_take_the_last_source_special():
    mapper = replacement_mapper([((1, 2), (1,))], (0, 3), (0, 2, 3), 4)
    assert mapper[0, 0] == 1 and mapper[3, 2] == 1 and mapper[3, 3] == 1
    assert torch.equal(mapper[[1, 2], 1], torch.ones(2))


def test_refinement_aligns_shared_tokens_and_marks_new_ones():
    source = [49406, 320, 2368, 49407, 49407, 49407]
    target = [49406, 320, 7609, 2368, 49407, 49407]
    mapper, alphas = refinement_mapper(source, target)
    assert alphas.tolist() == [1, 1, 0, 1, 1, 1]
    assert mapper[[0, 1, 3, 4, 5]].tolist() == [0, 1, 2, 3, 4]


def test_refinement_of_identical_sequences_is_the_identity():
    tokens = [1, 5, 5, 7, 2, 2]
    mapper, alphas = refinement_mapper(tokens, tokens)
    assert mapper.tolist() == list(range(6)) and alphas.tolist() == [1.0] * 6


def test_edit_rebuilds_only_the_targets_and_reweights_within_the_edit():
    probs = probabilities(3)
    mapper = torch.eye(8)[[0, 2, 1, 3, 4, 5, 6, 7]]
    weights = equalizer(8, {2: 2.0})
    edited = CrossAttentionEdit(mapper, weights=weights)(probs)
    assert torch.equal(edited[0], probs[0])
    for target in (1, 2):
        assert torch.equal(edited[target][..., 1], probs[0][..., 2])
        assert torch.equal(edited[target][..., 2], 2.0 * probs[0][..., 1])
        assert torch.equal(edited[target][..., 3:], probs[0][..., 3:])


def test_refine_edit_keeps_the_target_where_alpha_is_zero():
    probs = probabilities(2)
    mapper = torch.tensor([0, 1, 0, 2, 3, 4, 5, 6])
    alphas = torch.tensor([1.0, 1, 0, 1, 1, 1, 1, 1])
    edited = CrossAttentionEdit(mapper, alphas)(probs)
    assert torch.equal(edited[1][..., 2], probs[1][..., 2])
    assert torch.equal(edited[1][..., 3], probs[0][..., 2])
    with pytest.raises(ValueError, match="77 context tokens, the prompts were aligned for 8"):
        CrossAttentionEdit(mapper, alphas)(torch.ones(2, 1, 3, 77))


def test_step_windows_follow_the_official_schedules():
    assert cross_replace_steps(50, 0.8) == range(40) and cross_replace_steps(50, 0.4) == range(20)
    assert cross_replace_steps(4, 1.0) == range(4) and cross_replace_steps(4, 0.0) == range(0)
    assert self_replace_steps(50, 0.5) == range(25) and self_replace_steps(50, 0.6) == range(30)
    with pytest.raises(ValueError, match="self_replace: a fraction"):
        self_replace_steps(10, -0.1)


def test_start_end_windows_scale_both_ends_by_n_plus_one():
    assert cross_replace_steps(50, (0.2, 0.6)) == range(10, 30) and cross_replace_steps(9, (0.3, 1.0)) == range(3, 9)
    assert cross_replace_steps(4, (0.5, 0.5)) == range(2, 2)
    with pytest.raises(ValueError, match="cross_replace: the window starts at 0.6, after its end 0.2"):
        cross_replace_steps(10, (0.6, 0.2))


def test_alpha_table_gives_words_their_own_windows_over_the_default():
    # N = 9 steps (fractions scaled by N + 1 = 10), 6 tokens; the default window 0.8 covers rows 0-7. Tokens 2, 3
    # get (0.3, 0.6): rows 3-5; token 4 gets (0, 0.2), then (0.5, 1.0) together with token 5: the later one wins.
    words = [((2, 3), (0.3, 0.6)), ((4,), (0.0, 0.2)), ((4, 5), (0.5, 1.0))]
    alpha = cross_replace_alpha(9, 6, 0.8, words)
    expected = [
        "110000",
        "110000",
        "110000",
        "111100",
        "111100",
        "111111",
        "110011",
        "110011",
        "000011",
    ]
    assert alpha.dtype == torch.bool and ["".join(str(int(v)) for v in row) for row in alpha.tolist()] == expected
    runs = [(steps, None if row is None else row.int().tolist()) for steps, row in alpha_runs(alpha)]
    assert runs == [
        (range(0, 3), [1, 1, 0, 0, 0, 0]),
        (range(3, 5), [1, 1, 1, 1, 0, 0]),
        (range(5, 6), None),
        (range(6, 8), [1, 1, 0, 0, 1, 1]),
        (range(8, 9), [0, 0, 0, 0, 1, 1]),
    ]
    late = cross_replace_alpha(9, 6, 0.0, [((1,), (0.3, 0.6))])
    assert [(steps, row.int().tolist()) for steps, row in alpha_runs(late)] == [(range(3, 6), [0, 1, 0, 0, 0, 0])]
    assert torch.equal(cross_replace_alpha(9, 6, 0.4), torch.arange(9)[:, None].expand(9, 6) < 4)


def test_edit_rebuilds_and_reweights_only_the_columns_of_its_alpha_row():
    probs = probabilities(2)
    columns = torch.tensor([True, True, False, True, False, True, True, True])
    edited = CrossAttentionEdit(torch.eye(8), weights=equalizer(8, {1: 2.0, 2: 3.0}), columns=columns)(probs)
    assert torch.equal(edited[0], probs[0])
    assert torch.equal(edited[1][..., ~columns], probs[1][..., ~columns])
    assert torch.equal(edited[1][..., [0, 3, 5, 6, 7]], probs[0][..., [0, 3, 5, 6, 7]])
    assert torch.equal(edited[1][..., 1], 2.0 * probs[0][..., 1])


def test_word_weights_are_parsed_with_clear_errors():
    assert parse_word_weights("tiger:2.0, red hat : 0.5,") == {"tiger": 2.0, "red hat": 0.5}
    assert parse_word_weights("  ") == {}
    for bad in ("tiger", "tiger:x", ":2", "tiger:nan"):
        with pytest.raises(ValueError, match="word_weights: cannot read"):
            parse_word_weights(bad)


def test_blend_mask_thresholds_the_pooled_normalised_map_and_ors_the_source():
    maps = torch.zeros(2, 4, 4)
    maps[0, 0, 0] = 1.0
    maps[1, 3, 3] = 2.0
    maps[1, 0, 3] = 0.5
    mask = blend_mask(maps, (8, 8), 0.3)
    assert mask.shape == (2, 1, 8, 8)
    expected_target = torch.zeros(4, 4)
    expected_target[:2, :2] = 1  # the source's pixel, max-pooled
    expected_target[2:, 2:] = 1  # the target's peak, max-pooled
    assert torch.equal(mask[1, 0, ::2, ::2], expected_target)
    assert torch.equal(mask[1, 0], mask[1, 0, ::2, ::2].repeat_interleave(2, 0).repeat_interleave(2, 1))
    x = torch.randn(2, 4, 8, 8)
    blended = blend_latents(x, mask)
    assert torch.equal(blended[0], x[0])
    outside = mask[1, 0] == 0
    assert torch.equal(blended[1][:, outside], x[0][:, outside])
    torch.testing.assert_close(blended[1][:, ~outside], x[1][:, ~outside])
    assert blend_start_step(50) == 10 and blend_start_step(4) == 0


def test_blend_mask_of_an_empty_map_is_empty():
    assert blend_mask(torch.zeros(2, 4, 4), (8, 8), 0.3).sum() == 0


class LinearPredictor:
    """A stand-in for the UNet: ε_c and ε_∅ linear in x and σ, different per null embedding."""

    def both(self, x, sigma, null):
        offset = 0.0 if null is None else float(null.mean())
        return 0.1 * x + sigma, -0.05 * x + offset


def test_the_replay_steps_exactly_like_guided_ddim_and_blends_after_each_step():
    from precise_edit.core.s2edit.ddim_inversion import ddim_schedule
    from precise_edit.core.s2edit.null_text_inversion import guided_ddim_sample
    from precise_edit.core.s2edit.prompt_to_prompt_sampling import prompt_to_prompt_sample

    train_sigmas = torch.linspace(0.03, 14.6, 1000)
    schedule = ddim_schedule(train_sigmas, 5)
    x = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(0)) * 14.6
    nulls = [torch.full((1, 77, 8), float(i)) for i in range(5)]
    reference = guided_ddim_sample(LinearPredictor(), x, schedule, guidance=7.5, nulls=nulls)
    assert torch.equal(prompt_to_prompt_sample(LinearPredictor(), x, schedule, guidance=7.5, nulls=nulls), reference)
    seen = []

    def keep_source(step, batch):
        seen.append(step)
        return batch[:1].expand_as(batch)

    blended = prompt_to_prompt_sample(LinearPredictor(), x, schedule, guidance=7.5, nulls=nulls, after_step=keep_source)
    assert seen == [0, 1, 2, 3, 4] and torch.equal(blended[1], blended[0])
    with pytest.raises(ValueError, match="4 null embeddings for a schedule of 5 steps"):
        prompt_to_prompt_sample(LinearPredictor(), x, schedule, guidance=7.5, nulls=nulls[:4])
