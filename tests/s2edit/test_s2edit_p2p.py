"""Prompt-to-Prompt Edit on the tiny SD1.5 model inside ComfyUI: identical prompts reproduce the reconstruction,
the controllers change exactly the attention they should (maps read back per step), self-attention replacement
and local blending act where and when they should, identity masks hold, the model is left as it was, and bad
inputs give clear errors."""

import pytest
import torch
from attention_helpers import LATENT_HW, PROMPT, encode, sample

STEPS, INNER, GUIDANCE = 3, 2, 7.5
NULL_PROMPT = "a photo of a cat wearing a blue hat"
DOG = "a photo of a dog wearing a red hat"
EDIT_DEFAULTS = dict(
    controller="auto",
    cross_replace=0.5,
    word_cross_replace="",
    self_replace=0.5,
    word_weights="",
    blend_words="",
    blend_threshold=0.3,
    output="source_and_edit",
)


def source_latent() -> torch.Tensor:
    return torch.randn(1, 4, *LATENT_HW, generator=torch.Generator().manual_seed(7)) / 0.18215


@pytest.fixture(scope="module")
def inversions(sd15):
    """Null-text and plain DDIM inversions of one source, and a stock sample taken before any edit ran."""
    from precise_edit.nodes.s2edit.inversion import NULL_TEXT, PLAIN_DDIM, invert

    positive, negative = encode(sd15.clip, PROMPT), encode(sd15.clip, NULL_PROMPT)
    stock = {"options": repr(sd15.model.model_options), "sample": sample(sd15.model, positive, negative, steps=1)}
    with torch.inference_mode():
        results = {
            mode: invert(
                sd15.model,
                positive,
                negative,
                source_latent(),
                steps=STEPS,
                guidance=GUIDANCE,
                inner_steps=INNER,
                epsilon=1e-5,
                mode=mode,
            )
            for mode in (NULL_TEXT, PLAIN_DDIM)
        }
    return {**results, "stock": stock}


@pytest.fixture(scope="module")
def plain(inversions):
    return inversions["plain_ddim"]


def run_edit(sd15, inversion, target: str = DOG, source: str = PROMPT, model=None, **options):
    from precise_edit.nodes.s2edit.nodes_edit import PromptToPromptEdit

    settings = {**EDIT_DEFAULTS, **options}
    with torch.inference_mode():
        return PromptToPromptEdit.execute(model or sd15.model, sd15.clip, inversion, source, target, **settings).result


def make_plan(sd15, inversion, target: str = DOG, source: str = PROMPT, identity=None, **options):
    from precise_edit.nodes.s2edit.prompt_to_prompt_replay import plan_edit

    settings = {**EDIT_DEFAULTS, **options}
    settings.pop("output")
    steps = inversion.schedule.steps
    return plan_edit(sd15.clip, source, target, steps, identity=identity, **settings)


def replaced_steps(plan) -> list[int]:
    """The sampling steps whose cross-attention is rebuilt in at least one token column."""
    return [step for step, row in enumerate(plan.cross_alpha) if bool(row.any())]


def edit_with_step_maps(sd15, inversion, plan, before_edit: bool = False):
    """Replay ``plan`` with one capture per step on every layer, after the edits (and, if asked, before them)."""
    from precise_edit.core.attention.attention_store import AttentionStore
    from precise_edit.nodes.attention.attention_capture import AttentionCapture
    from precise_edit.nodes.attention.attention_effect import StepRange
    from precise_edit.nodes.attention.cross_attention_patch import add_cross_attention_effect, cross_attention_layers
    from precise_edit.nodes.s2edit.prompt_to_prompt_replay import patch_model, sample_edit

    layers = cross_attention_layers(sd15.model)
    sigmas = inversion.schedule.sampling_sigmas()

    def with_captures(model):
        stores = []
        for step in range(inversion.schedule.steps):
            stores.append(AttentionStore())
            steps = StepRange.from_steps(sigmas, range(step, step + 1))
            capture = AttentionCapture(
                store=stores[-1], context_length=plan.context_length, heads=None, steps=steps, target=plan.target
            )
            model = add_cross_attention_effect(model, capture, layers)
        return model, stores

    base, before = with_captures(sd15.model) if before_edit else (sd15.model, None)
    patched, blend_store = patch_model(base, plan, inversion)
    patched, after = with_captures(patched)
    with torch.inference_mode():
        samples, mask = sample_edit(patched, blend_store, plan, inversion)
    return samples, mask, before, after


@pytest.mark.slow
def test_identical_prompts_give_the_reconstruction(sd15, inversions):
    from precise_edit.nodes.s2edit.inversion import reconstruct

    inversion = inversions["null_text"]
    with torch.inference_mode():
        reconstruction = reconstruct(sd15.model, inversion, encode(sd15.clip, PROMPT))
    latent, mask = run_edit(sd15, inversion, PROMPT, cross_replace=0.8, self_replace=0.5, word_weights="")
    samples = latent["samples"]
    assert samples.shape == (2, 4, *LATENT_HW) and torch.equal(mask, torch.ones(1, 8 * LATENT_HW[0], 8 * LATENT_HW[1]))
    scale = float(reconstruction.abs().max())
    # Batch [source, target] against the batch of one of the reconstruction: the UNet's float32 rounding differs by
    # batch size, and guidance 7.5 amplifies it over the steps.
    print(f"edit vs reconstruction: max |Δ| {float((samples - reconstruction).abs().max()) / scale:.2e} of max |x|")
    torch.testing.assert_close(samples[:1], reconstruction, atol=1e-4 * scale, rtol=0)
    torch.testing.assert_close(samples[1:], samples[:1], atol=1e-6 * scale, rtol=0)


def test_replace_and_reweight_take_the_source_maps_inside_the_window_only(sd15, plain):
    plan = make_plan(sd15, plain, word_weights="hat:2.0, red:0.5", cross_replace=0.3, self_replace=0.0)
    assert plan.controller == "replace" and replaced_steps(plan) == [0] and bool(plan.cross_alpha[0].all())
    samples, _, _, stores = edit_with_step_maps(sd15, plain, plan)
    red, hat = 8, 9
    others = [t for t in range(77) if t not in (red, hat)]
    for step, store in enumerate(stores):
        for name, entry in store.layers.items():
            assert entry.count == 1, name
            source, target = entry.mean[0], entry.mean[1]
            if step in replaced_steps(plan):
                # cat → dog: every target column is the source's column of the same position, hat and red re-weighted.
                assert torch.equal(target[:, others], source[:, others]), (step, name)
                torch.testing.assert_close(target[:, hat], 2.0 * source[:, hat], atol=0, rtol=1e-6)
                torch.testing.assert_close(target[:, red], 0.5 * source[:, red], atol=0, rtol=1e-6)
            else:
                assert (target - source).abs().max() > 1e-6, (step, name)
                torch.testing.assert_close(target.sum(-1), torch.ones_like(target[:, 0]), atol=1e-5, rtol=0)
    assert (samples[1] - samples[0]).abs().max() > 1e-3


def test_refine_keeps_the_aligned_tokens_and_the_new_word_own_attention(sd15, plain):
    target_text = "a photo of a silver cat wearing a red hat"
    plan = make_plan(sd15, plain, target_text, cross_replace=0.3, self_replace=0.0)
    assert plan.controller == "refine" and replaced_steps(plan) == [0]
    _, _, before, after = edit_with_step_maps(sd15, plain, plan, before_edit=True)
    silver = 5
    # Source 0..10 = <start> a photo of a cat wearing a red hat <end>; the target has silver at 5.
    aligned_target = [t for t in range(77) if t != silver]
    aligned_source = [t if t < silver else t - 1 for t in aligned_target]
    for step in replaced_steps(plan):
        for name, entry in after[step].layers.items():
            source, target = entry.mean[0], entry.mean[1]
            assert torch.equal(target[:, aligned_target[:11]], source[:, aligned_source[:11]]), name
            assert torch.equal(target[:, silver], before[step].layers[name].mean[1][:, silver]), name
    for name, entry in after[1].layers.items():
        assert torch.equal(entry.mean[1], before[1].layers[name].mean[1]), name


def assert_columns(step_maps: tuple, step: int, from_source: list[int], own: list[int]) -> None:
    """At ``step``, in every layer, the target's columns ``from_source`` are the source's and its columns ``own``
    are its own unedited ones, which differ from the source's (so the check can fail)."""
    before, after = step_maps
    for name, entry in after[step].layers.items():
        source, target = entry.mean[0], entry.mean[1]
        unedited = before[step].layers[name].mean[1]
        assert torch.equal(target[:, from_source], source[:, from_source]), (step, name)
        if own:
            assert torch.equal(target[:, own], unedited[:, own]), (step, name)
            assert (unedited[:, own] - source[:, own]).abs().amax() > 1e-6, (step, name)


def test_a_word_window_shorter_than_the_default_gives_the_word_its_own_attention_after_it(sd15, plain):
    # 3 steps, fractions scaled by N + 1 = 4: the default 0.75 covers steps 0-2, dog's 0.25 step 0 only.
    plan = make_plan(sd15, plain, cross_replace=0.75, word_cross_replace="dog: 0.25", self_replace=0.0)
    dog = 5
    others = [t for t in range(77) if t != dog]
    expected = torch.ones(STEPS, 77, dtype=torch.bool)
    expected[1:, dog] = False
    assert plan.controller == "replace" and torch.equal(plan.cross_alpha, expected)
    samples, _, before, after = edit_with_step_maps(sd15, plain, plan, before_edit=True)
    assert_columns((before, after), 0, list(range(77)), [])
    for step in (1, 2):
        assert_columns((before, after), step, others, [dog])
    assert (samples[1] - samples[0]).abs().max() > 1e-3


def test_a_start_end_window_starts_late_and_other_words_follow_the_default(sd15, plain):
    # The default 0.25 covers step 0; "red hat" (tokens 8, 9) from 0.25 to 1.0 covers steps 1 and 2.
    plan = make_plan(sd15, plain, cross_replace=0.25, word_cross_replace="red hat: 0.25-1.0", self_replace=0.0)
    words = [8, 9]
    others = [t for t in range(77) if t not in words]
    expected = torch.zeros(STEPS, 77, dtype=torch.bool)
    expected[0, others] = True
    expected[1:, words] = True
    assert torch.equal(plan.cross_alpha, expected)
    _, _, before, after = edit_with_step_maps(sd15, plain, plan, before_edit=True)
    assert_columns((before, after), 0, others, words)
    for step in (1, 2):
        assert_columns((before, after), step, words, others)


class SelfAttentionSpy:
    """Wraps an installed self-attention replace and records, per call, how far its rows are from plain attention."""

    def __init__(self, patch, calls: list) -> None:
        self.patch, self.calls = patch, calls

    def __call__(self, q, k, v, extra_options):
        from comfy.ldm.modules.attention import optimized_attention

        from precise_edit.nodes.attention.patch_install import call_layout

        out = self.patch(q, k, v, extra_options)
        plain = optimized_attention(q, k, v, extra_options["n_heads"])
        call, chunks, chunk_count = call_layout(extra_options)
        images = q.shape[0] // chunk_count
        per_row = (out - plain).abs().flatten(1).amax(1)
        for chunk, cond in enumerate(chunks):
            role = "edited" if self.patch.target.matches(cond) else "other"
            for image in range(images):
                row = "target" if role == "edited" and image > 0 else "source" if role == "edited" else "other"
                self.calls.append((self.patch.layer.key, call.sigma, row, float(per_row[chunk * images + image])))
        return out


def test_self_attention_is_replaced_only_in_the_coarse_layers_and_chosen_steps(sd15, plain):
    from precise_edit.nodes.attention.self_attention_patch import SelfAttentionReplace
    from precise_edit.nodes.s2edit.prompt_to_prompt_replay import patch_model, sample_edit

    plan = make_plan(sd15, plain, cross_replace=0.0, self_replace=0.7)
    assert not replaced_steps(plan) and list(plan.self_steps) == [0, 1]
    patched, store = patch_model(sd15.model, plan, plain)
    replaces = patched.model_options["transformer_options"]["patches_replace"]["attn1"]
    assert sorted(replaces) == [("input", 3, 0), ("middle", 0, 0), ("output", 0, 0), ("output", 1, 0)]
    calls: list = []
    for key, patch in replaces.items():
        assert isinstance(patch, SelfAttentionReplace)
        patched.set_model_attn1_replace(SelfAttentionSpy(patch, calls), *key)
    with torch.inference_mode():
        samples, _ = sample_edit(patched, store, plan, plain)
    sigmas = [float(s) for s in plain.schedule.sampling_sigmas()[:STEPS]]
    for key in replaces:
        for step, sigma in enumerate(sigmas):
            rows = {row: diff for layer, s, row, diff in calls if layer == key and s == sigma}
            assert rows["source"] <= 1e-5 and rows["other"] <= 1e-5, (key, step)
            assert (rows["target"] > 1e-4) == (step in plan.self_steps), (key, step, rows)
    assert (samples[1] - samples[0]).abs().max() > 1e-3


def test_local_blend_keeps_the_source_outside_the_blend_mask(sd15, plain):
    from precise_edit.core.s2edit.local_blend import blend_start_step

    latent, image_mask = run_edit(sd15, plain, blend_words="cat, dog", blend_threshold=0.9, word_weights="dog:2")
    samples = latent["samples"]
    mask = image_mask[:, ::8, ::8][0].bool()
    assert image_mask.shape == (1, 8 * LATENT_HW[0], 8 * LATENT_HW[1]) and blend_start_step(STEPS) == 0
    assert 0 < int(mask.sum()) < mask.numel(), "the test needs a blend mask that is neither empty nor full"
    assert torch.equal(samples[1][:, ~mask], samples[0][:, ~mask])
    assert (samples[1][:, mask] - samples[0][:, mask]).abs().amax() > 1e-3


IDENTITY_SOURCE = "a photo of a [I] cat wearing a red hat"
IDENTITY_DOG = "a photo of a [I] dog wearing a red hat"


def saved_token(placeholder: str, name: str, seed: int, mask: torch.Tensor | None):
    import folder_paths
    import safetensors.torch

    from precise_edit.nodes.s2edit.identity import IdentityToken

    vector = torch.randn(1, 768, generator=torch.Generator().manual_seed(seed)) * 0.02
    directory = folder_paths.get_folder_paths("embeddings")[0]
    safetensors.torch.save_file({"clip_l": vector}, f"{directory}/{name}.safetensors")
    return IdentityToken(
        placeholder=placeholder,
        embedding_name=name,
        vectors={"clip_l": vector},
        mask=mask,
        source_prompt="a photo of a [I] cat",
        subject="cat",
    )


def box_mask(rows: slice, columns: slice) -> torch.Tensor:
    mask = torch.zeros(1, 64, 96)
    mask[:, rows, columns] = 1.0
    return mask


@pytest.fixture(scope="module")
def identity(comfy):
    from precise_edit.nodes.s2edit.identity import Identity

    token = saved_token("[I]", "pe_p2p_test_identity", 3, box_mask(slice(16, 48), slice(8, 56)))
    return Identity(tokens=(token,), source_prompt=token.source_prompt, lora_name=None)


@pytest.fixture(scope="module")
def compositional(identity):
    """[I] as above and an attribute [A] whose (reference image's) mask covers the other side of the image."""
    from precise_edit.nodes.s2edit.identity import Identity

    attribute = saved_token("[A]", "pe_p2p_test_attribute", 4, box_mask(slice(0, 64), slice(64, 96)))
    return Identity(tokens=(identity.tokens[0], attribute), source_prompt=identity.source_prompt, lora_name=None)


def invert_node(sd15, text: str, identity=None, clip=None, positive_text: str | None = None, mode: str = "plain_ddim"):
    """Null-Text Inversion of the source under ``text``, given the caption (and identity) as a user would;
    ``positive_text`` encodes another caption than ``text`` into the positive input."""
    from precise_edit.nodes.s2edit.nodes_edit import NullTextInversion

    clip = clip or sd15.clip
    expanded = identity.expand(text) if identity is not None else text
    positive, negative = encode(clip, positive_text or expanded), encode(sd15.clip, NULL_PROMPT)
    latent = {"samples": source_latent()}
    settings = dict(steps=STEPS, guidance=GUIDANCE, inner_steps=INNER, epsilon=1e-5, mode=mode)
    with torch.inference_mode():
        output = NullTextInversion.execute(
            sd15.model, positive, negative, latent, **settings, clip=clip, source_text=text, identity=identity
        )
    return output.result[0]


@pytest.fixture(scope="module")
def masked(sd15, identity):
    """A plain DDIM inversion under IDENTITY_SOURCE with [I]'s attention masked."""
    return invert_node(sd15, IDENTITY_SOURCE, identity)


@pytest.fixture(scope="module")
def captioned(sd15):
    """A plain DDIM inversion under PROMPT that knows its caption."""
    return invert_node(sd15, PROMPT)


def test_identity_token_attention_is_zero_outside_its_mask_in_both_rows_at_every_step(sd15, masked, identity):
    from attention_helpers import grid_zero

    plan = make_plan(sd15, masked, IDENTITY_DOG, IDENTITY_SOURCE, identity=identity)
    assert [(row, mask.positions) for row, mask in plan.identity_masks] == [(0, (5,)), (1, (5,))]
    mask = identity.tokens[0].mask
    _, _, _, stores = edit_with_step_maps(sd15, masked, plan)
    for store in stores:
        for name, entry in store.layers.items():
            outside = grid_zero(mask, entry.grid)
            for row in (0, 1):
                assert torch.all(entry.mean[row][outside][:, 5] == 0), (name, row)
                assert torch.all(entry.mean[row][~outside][:, 5] > 0), (name, row)


def test_a_compositional_edit_masks_the_identity_token_only(sd15, masked, compositional):
    from attention_helpers import grid_zero

    target = "a photo of a [I] cat wearing a red hat with [A] stripes"
    plan = make_plan(sd15, masked, target, IDENTITY_SOURCE, identity=compositional, cross_replace=0.0)
    assert [(row, mask.placeholder) for row, mask in plan.identity_masks] == [(0, "[I]"), (1, "[I]")]
    identity_mask, attribute_mask = (token.mask for token in compositional.tokens)
    _, _, _, stores = edit_with_step_maps(sd15, masked, plan)
    attribute = 12  # <start> a photo of a [I] cat wearing a red hat with [A] stripes
    for store in stores:
        for name, entry in store.layers.items():
            target_maps = entry.mean[1]
            assert torch.all(target_maps[grid_zero(identity_mask, entry.grid)][:, 5] == 0), name
            # [A]'s mask is the reference image's: on the source image [A] keeps its attention everywhere.
            assert torch.all(target_maps[grid_zero(attribute_mask, entry.grid)][:, attribute] > 0), name


def change_outside(samples: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """Max and mean |target − source| over the latent pixels outside ``mask`` (image size, 8 px per latent pixel)."""
    outside = mask[0, ::8, ::8] == 0
    change = (samples[1] - samples[0]).abs()[:, outside]
    return float(change.max()), float(change.mean())


def old_replay(sd15, plan, inversion):
    """The replay before spatial control covered the source row: [I] masked in the target row only."""
    from dataclasses import replace

    from precise_edit.nodes.s2edit.prompt_to_prompt_replay import replay

    with torch.inference_mode():
        return replay(sd15.model, replace(plan, identity_masks=plan.identity_masks[1:]), inversion)[0]


@pytest.mark.slow
def test_the_identity_edit_replays_the_masked_inversion_in_its_source_row(sd15, masked, identity):
    from precise_edit.nodes.s2edit.inversion import reconstruct

    unmasked = invert_node(sd15, identity.expand(IDENTITY_SOURCE))
    assert (unmasked.noise - masked.noise).abs().max() > 1e-3, "masking [I] must change the inversion"
    with torch.inference_mode():
        reconstruction = reconstruct(sd15.model, masked, encode(sd15.clip, identity.expand(IDENTITY_SOURCE)))
    scale = float(reconstruction.abs().max())
    mask = identity.tokens[0].mask
    same, _ = run_edit(sd15, masked, IDENTITY_SOURCE, IDENTITY_SOURCE, identity=identity)
    samples = same["samples"]
    torch.testing.assert_close(samples[:1], reconstruction, atol=1e-4 * scale, rtol=0)
    torch.testing.assert_close(samples[1:], samples[:1], atol=1e-6 * scale, rtol=0)

    plan = make_plan(sd15, masked, IDENTITY_SOURCE, IDENTITY_SOURCE, identity=identity)
    before = change_outside(old_replay(sd15, plan, unmasked), mask)
    dog_plan = make_plan(sd15, masked, IDENTITY_DOG, IDENTITY_SOURCE, identity=identity)
    dog_before = change_outside(old_replay(sd15, dog_plan, unmasked), mask)
    dog, _ = run_edit(sd15, masked, IDENTITY_DOG, IDENTITY_SOURCE, identity=identity)
    dog_after = change_outside(dog["samples"], mask)
    print(
        f"|target − source| outside [I]'s mask, max / mean (latent max {scale:.1f}): same prompt, target row masked "
        f"only {before[0]:.3g} / {before[1]:.3g}, both rows {change_outside(samples, mask)[0]:.3g}; cat → dog, "
        f"target row only {dog_before[0]:.3g} / {dog_before[1]:.3g}, both rows {dog_after[0]:.3g} / {dog_after[1]:.3g}"
    )
    # Random weights give [I] little attention, so the old leak is small, but a hundred times the tolerance above.
    assert before[0] > 1e-4 * scale, "the target-only mask must leak with identical prompts (the test's premise)"


@pytest.mark.slow
def test_the_edit_source_row_retraces_a_null_text_optimisation_made_with_the_identity_mask(sd15, identity):
    from precise_edit.core.s2edit.ddim_inversion import to_variance_preserving

    inversion = invert_node(sd15, IDENTITY_SOURCE, identity, mode="null_text")
    scale = sd15.model.model.latent_format.scale_factor
    reached = to_variance_preserving(inversion.optimisation.reconstruction, inversion.schedule.sigmas[0]) / scale
    latent, _ = run_edit(sd15, inversion, IDENTITY_SOURCE, IDENTITY_SOURCE, identity=identity)
    torch.testing.assert_close(latent["samples"][:1], reached, atol=1e-4 * float(reached.abs().max()), rtol=0)


@pytest.mark.slow
def test_an_edit_under_another_wording_is_refused_naming_both_prompts(sd15, captioned):
    latent, _ = run_edit(sd15, captioned)
    assert latent["samples"].shape == (2, 4, *LATENT_HW)
    message = (
        rf"source_text '{NULL_PROMPT}' does not encode to the prompt the inversion was made under, '{PROMPT}': "
        "its embedding differs"
    )
    with pytest.raises(ValueError, match=message):
        run_edit(sd15, captioned, source=NULL_PROMPT)


def test_the_same_caption_through_a_clip_with_another_lora_is_refused(sd15, captioned):
    from precise_edit.nodes.s2edit.nodes_edit import PromptToPromptEdit

    clip = sd15.clip.clone()
    weights = clip.patcher.model_state_dict()
    key = next(k for k in weights if k.endswith("layers.0.mlp.fc1.weight"))
    delta = torch.randn(weights[key].shape, generator=torch.Generator().manual_seed(5)) * 0.02
    clip.add_patches({key: (delta,)}, 1.0)
    settings = {**EDIT_DEFAULTS}
    message = rf"source_text '{PROMPT}' does not encode to the prompt the inversion was made under, '{PROMPT}'"
    with pytest.raises(ValueError, match=message), torch.inference_mode():
        PromptToPromptEdit.execute(sd15.model, clip, captioned, PROMPT, DOG, **settings)


def test_reconstruct_refuses_another_prompt_naming_the_inverted_one(sd15, captioned):
    from precise_edit.nodes.s2edit.inversion import reconstruct

    with pytest.raises(ValueError, match=rf"positive does not encode to the prompt .* made under, '{PROMPT}'"):
        reconstruct(sd15.model, captioned, encode(sd15.clip, NULL_PROMPT))


@pytest.mark.slow
def test_an_identity_edit_and_its_inversion_must_mask_alike(sd15, masked, captioned, identity):
    with pytest.raises(ValueError, match=r"identity: the inversion masked \[I\]"):
        run_edit(sd15, masked, identity.expand(IDENTITY_DOG), identity.expand(IDENTITY_SOURCE))
    unmasked = invert_node(sd15, identity.expand(IDENTITY_SOURCE))
    with pytest.raises(ValueError, match=r"inversion: it was made without masking \[I\]"):
        run_edit(sd15, unmasked, IDENTITY_DOG, IDENTITY_SOURCE, identity=identity)
    with pytest.raises(ValueError, match=r"source_text: 'a photo of a \[I\] cat wearing a red hat' does not encode"):
        invert_node(sd15, IDENTITY_SOURCE, identity, positive_text=IDENTITY_SOURCE)
    with pytest.raises(ValueError, match=r"source_text: with an identity, give the caption"):
        invert_node(sd15, "", identity)


def test_the_model_is_left_unpatched(sd15, inversions):
    """Every edit above ran on the session's model; sampling it again gives the stock result of before."""
    stock = inversions["stock"]
    assert repr(sd15.model.model_options) == stock["options"] and not sd15.model.wrappers
    positive, negative = encode(sd15.clip, PROMPT), encode(sd15.clip, NULL_PROMPT)
    assert torch.equal(sample(sd15.model, positive, negative, steps=1), stock["sample"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"word_weights": "zebra:2.0"}, r"word_weights: 'zebra' is not in the prompt\. The prompt's tokens are"),
        ({"word_weights": "dog=2"}, r"word_weights: cannot read 'dog=2'; expected \"word:weight"),
        ({"word_weights": "dog:-1"}, "word_weights: the weight of 'dog' is -1.0"),
        ({"blend_words": "zebra"}, "blend_words: in the source prompt, 'zebra' is not in the prompt"),
        ({"controller": "replace", "target": "a photo of a big dog wearing a red hat"}, "controller: replacement"),
        ({"target": "a " + "very " * 80 + "big dog"}, "target_text: the target prompt has 154 tokens"),
        ({"target": " "}, "target_text: the prompt is empty"),
        ({"cross_replace": 1.5}, "cross_replace: a fraction"),
        (
            {"word_cross_replace": "dog: 0.2, zebra: 0.4"},
            r"word_cross_replace: in the target prompt, 'zebra' is not in the prompt\. The prompt's tokens are",
        ),
        ({"word_cross_replace": "cat: 0.4"}, "word_cross_replace: in the target prompt, 'cat' is not in the prompt"),
        ({"word_cross_replace": "dog: 1.4"}, "word_cross_replace: the window of 'dog' has '1.4', not a fraction"),
        ({"word_cross_replace": "dog: 0.2-x"}, "word_cross_replace: the window of 'dog' has 'x', not a fraction"),
        ({"word_cross_replace": "dog: 0.6-0.2"}, "word_cross_replace: the window of 'dog' starts at 0.6, after"),
        ({"word_cross_replace": "dog 0.4"}, "word_cross_replace: cannot read 'dog 0.4'; expected \"word: end\""),
        ({"word_cross_replace": "dog: 0.2, dog: 0.4"}, "word_cross_replace: 'dog' has two windows"),
    ],
)
def test_bad_inputs_give_errors_naming_the_input(sd15, plain, options, message):
    with pytest.raises(ValueError, match=message):
        run_edit(sd15, plain, **options)


def test_an_inversion_from_another_model_is_refused(sd15, plain):
    from comfy_extras.nodes_model_advanced import ModelSamplingDiscrete

    zsnr = ModelSamplingDiscrete().patch(sd15.model, "eps", True)[0]
    with pytest.raises(ValueError, match="model: its noise schedule differs"):
        run_edit(sd15, plain, model=zsnr)
