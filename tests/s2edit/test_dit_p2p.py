"""Prompt-to-prompt and flow inversion on a DiT: the tiny Flux.1 stand-in (ComfyUI's own Flux classes, see
harness/tiny_dit_models.py) with a stand-in text encoder whose tokenizer is Flux's real one (CLIP-L + T5-XXL) and
whose T5 token embeddings come from a seeded table of the stand-in's text width. Invert a latent, then edit it with the
source and target prompt in one batch: the target row's image→text probabilities at the injected steps equal the
source's, the model is unchanged where no edit is active, and what a DiT cannot do is refused."""

import pytest
import torch
from dit_helpers import recorder

from harness.tiny_dit_models import POOLED_WIDTH, TEXT_WIDTH

SOURCE, TARGET = "a photo of a cat on a sofa", "a photo of a dog on a sofa"
REFINED = "a photo of a small cat on a sofa"
NULL = ""
LATENT_HW = (6, 10)
STEPS = 16
EDIT_DEFAULTS = dict(
    controller="auto",
    cross_replace=0.5,
    word_cross_replace="",
    self_replace=0.0,
    word_weights="",
    blend_words="",
    blend_threshold=0.3,
    output="source_and_edit",
)


class StandInTextEncoder:
    """What the p2p nodes use of a DiT's CLIP: ``tokenizer`` (ComfyUI's real one: Flux's CLIP-L + T5-XXL, Qwen-Image's
    Qwen2.5-VL), ``tokenize`` and ``encode_from_tokens_scheduled``. The encoder emits one embedding per token of the
    sequence the DiT is given (``dit_text_parts``: Flux's T5 tokens, Qwen's tokens after the template ComfyUI drops),
    each a row of a seeded table of the stand-in DiT's text width (a T5-XXL or Qwen2.5-7B is too big for a test); the
    pooled output is a projection of their mean."""

    def __init__(self, tokenizer: str = "FluxTokenizer", seed: int = 0) -> None:
        from dit_helpers import stand_in_clip

        clip = stand_in_clip(tokenizer)
        self.tokenizer, self.cond_stage_model = clip.tokenizer, clip.cond_stage_model
        generator = torch.Generator().manual_seed(seed)
        self.table = torch.randn(32128, TEXT_WIDTH, generator=generator)
        self.projection = torch.randn(TEXT_WIDTH, POOLED_WIDTH, generator=generator) / TEXT_WIDTH**0.5

    def tokenize(self, text: str) -> str:
        return text

    def encode_from_tokens_scheduled(self, text: str) -> list:
        from precise_edit.nodes.attention.prompt_tokens import dit_text_parts

        ids = torch.tensor([token for part in dit_text_parts(self, text) for token in part.tokens]) % len(self.table)
        embedding = self.table[ids][None]
        return [[embedding, {"pooled_output": embedding.mean(1) @ self.projection, "guidance": 3.5}]]


def encode(clip: StandInTextEncoder, text: str) -> list:
    return clip.encode_from_tokens_scheduled(clip.tokenize(text))


def source_latent() -> torch.Tensor:
    return torch.randn(1, 16, *LATENT_HW, generator=torch.Generator().manual_seed(5))


@pytest.fixture(scope="module")
def flux(comfy):
    from harness.tiny_dit_models import tiny_flux

    return tiny_flux()


@pytest.fixture(scope="module")
def clip(comfy):
    return StandInTextEncoder()


def invert(flux, clip, mode: str = "guided", guidance: float = 1.0, latent=None, steps: int = STEPS):
    from precise_edit.nodes.s2edit.nodes_edit import NullTextInversion

    with torch.inference_mode():
        return NullTextInversion.execute(
            model=flux,
            positive=encode(clip, SOURCE),
            negative=encode(clip, NULL),
            latent={"samples": source_latent() if latent is None else latent},
            steps=steps,
            guidance=guidance,
            inner_steps=0,
            epsilon=1e-5,
            mode=mode,
            clip=clip,
            source_text=SOURCE,
        ).result[0]


@pytest.fixture(scope="module")
def inversion(flux, clip):
    return invert(flux, clip)


def edit(flux, clip, inversion, target: str = TARGET, **options):
    from precise_edit.nodes.s2edit.nodes_edit import PromptToPromptEdit

    settings = {**EDIT_DEFAULTS, **options}
    with torch.inference_mode():
        return PromptToPromptEdit.execute(flux, clip, inversion, SOURCE, target, **settings).result


def plan(flux, clip, inversion, target: str = TARGET, **options):
    from precise_edit.nodes.attention.dit_layers import dit_family
    from precise_edit.nodes.s2edit.prompt_to_prompt_replay import plan_edit

    settings = {**EDIT_DEFAULTS, **options}
    settings.pop("output")
    steps = inversion.schedule.steps
    return plan_edit(clip, SOURCE, target, steps, identity=None, dit=dit_family(flux), **settings)


def recorded_replay(flux, clip, inversion, target: str = TARGET, **options):
    """The edit's replay with a recorder after the edit on every block: (samples, [(block, probs, grid, rows)])."""
    from precise_edit.nodes.attention.dit_attention_patch import add_dit_attention_effect
    from precise_edit.nodes.attention.dit_layers import dit_family
    from precise_edit.nodes.s2edit.prompt_to_prompt_replay import patch_model, sample_edit

    edit_plan = plan(flux, clip, inversion, target, **options)
    probe = recorder(sigma_range=(1e9, 0.0))
    probe = type(probe)(probe.steps, edit_plan.target)
    patched, store = patch_model(flux, edit_plan, inversion)
    patched = add_dit_attention_effect(patched, probe, dit_family(flux).blocks)
    with torch.inference_mode():
        samples, _ = sample_edit(patched, store, edit_plan, inversion)
    return samples, probe.seen, edit_plan


def reconstruct(flux, clip, inversion) -> torch.Tensor:
    from precise_edit.nodes.s2edit.nodes_edit import InversionReconstruct

    with torch.inference_mode():
        return InversionReconstruct.execute(flux, inversion, encode(clip, SOURCE)).result[0]["samples"]


def test_the_inversion_of_a_flux_latent_reconstructs_it_far_better_than_fresh_noise(flux, clip, inversion):
    from dataclasses import replace

    assert inversion.flow and inversion.schedule.steps == STEPS
    source = source_latent()
    error = float((reconstruct(flux, clip, inversion) - source).square().mean())
    fresh_noise = torch.randn(source.shape, generator=torch.Generator().manual_seed(1))
    baseline = float((reconstruct(flux, clip, replace(inversion, noise=fresh_noise)) - source).square().mean())
    print(
        f"tiny Flux round trip, {STEPS} steps, MSE (source variance {source.var():.2f}): {error:.3g}; "
        f"from fresh noise {baseline:.3g}"
    )
    assert error < baseline / 20


def test_the_target_rows_image_to_text_probabilities_equal_the_sources_at_the_injected_steps(flux, clip, inversion):
    samples, seen, edit_plan = recorded_replay(flux, clip, inversion)
    injected = [step for step, row in enumerate(edit_plan.cross_alpha) if bool(row.all())]
    assert injected == list(range(int(0.5 * (STEPS + 1)))), "cross_replace 0.5: the first ⌊0.5·(N + 1)⌋ steps"
    blocks = {name for name, *_ in seen}
    assert blocks == {"double_block_0", "single_block_0"}
    calls_per_step = len(seen) // STEPS
    for i, (name, probs, grid, rows) in enumerate(seen):
        step = i // calls_per_step
        source, target = probs[0], probs[1]
        assert len(rows) == 2 and grid == (3, 5) and probs.shape[-1] == edit_plan.context_length
        if step in injected:
            torch.testing.assert_close(target, source, rtol=0, atol=0, msg=f"{name} step {step}")
        else:
            assert (target - source).abs().max() > 1e-4, f"{name} step {step}: the target kept the source's maps"
    assert not torch.equal(samples[0], samples[1])


def test_where_the_edit_is_inactive_the_patched_model_is_bit_identical_to_stock(flux, clip, inversion):
    """The edit's effects sit in every block but target only the edit's own tagged [source, target] cond: a plain
    KSampler run of the patched model on ordinary prompts is stock sampling, bit for bit."""
    import comfy.sample

    from precise_edit.nodes.s2edit.prompt_to_prompt_replay import patch_model

    patched, _ = patch_model(flux, plan(flux, clip, inversion), inversion)
    installed = patched.model_options["transformer_options"]["patches_replace"]["dit"]
    assert set(installed) == {("double_block", 0), ("single_block", 0)}
    assert "dit" not in flux.model_options.get("transformer_options", {}).get("patches_replace", {})
    positive, negative = encode(clip, TARGET), encode(clip, NULL)
    latent = torch.zeros(1, 16, *LATENT_HW)
    noise = comfy.sample.prepare_noise(latent, 3)
    runs = [
        comfy.sample.sample(
            model, noise, 3, 2.0, "euler", "simple", positive, negative, latent, disable_pbar=True, seed=3
        )
        for model in (patched, flux)
    ]
    assert torch.equal(*runs)


def test_invert_then_edit_keeps_the_source_row_and_changes_the_target(flux, clip, inversion):
    latent, mask = edit(flux, clip, inversion)
    samples = latent["samples"]
    back = reconstruct(flux, clip, inversion)
    torch.testing.assert_close(samples[:1], back, atol=1e-4 * float(back.abs().max()), rtol=0)
    assert samples.shape == (2, 16, *LATENT_HW) and mask.shape == (1, 8 * LATENT_HW[0], 8 * LATENT_HW[1])
    assert (samples[1] - samples[0]).abs().max() > 1e-3


def test_refinement_aligns_t5_tokens_and_copies_the_aligned_columns(flux, clip, inversion):
    _, seen, edit_plan = recorded_replay(flux, clip, inversion, REFINED)
    assert edit_plan.controller == "refine"
    mapper, alphas = edit_plan.edit.mapper, edit_plan.edit.alphas
    aligned = [j for j in range(edit_plan.context_length) if alphas[j] == 1]
    new = [j for j in range(edit_plan.context_length) if alphas[j] == 0]
    assert new, "the added word 'small' has no source token"
    name, probs, _, _ = seen[0]
    torch.testing.assert_close(probs[1][..., aligned], probs[0][..., mapper[aligned]], rtol=0, atol=0)


def test_word_weights_scale_the_target_columns_of_a_t5_word(flux, clip, inversion):
    _, seen, edit_plan = recorded_replay(flux, clip, inversion, word_weights="dog:2.0")
    weights = edit_plan.edit.weights.flatten()
    dog = [j for j in range(edit_plan.context_length) if weights[j] == 2.0]
    assert dog, "the word's T5 tokens were not found"
    _, probs, _, _ = seen[0]
    torch.testing.assert_close(probs[1][..., dog], 2.0 * probs[0][..., dog], rtol=1e-6, atol=0)


def test_self_replace_is_refused_on_a_dit(flux, clip, inversion):
    with pytest.raises(ValueError, match="self_replace: a DiT's image tokens attend to each other"):
        edit(flux, clip, inversion, self_replace=0.5)


def test_the_prompts_tokens_are_the_t5_sequence_flux_attends_to(clip):
    from precise_edit.nodes.s2edit.prompt_to_prompt_tokens import dit_prompt_tokens

    tokens = dit_prompt_tokens(clip, SOURCE, "source_text")
    t5 = clip.tokenizer.t5xxl
    assert tokens.length == 256 and tokens.words == tuple(SOURCE.split())
    cat = tokens.word_positions[SOURCE.split().index("cat")]
    assert [t5.inv_vocab[tokens.tokens[p]] for p in cat] == ["▁cat"]
    assert set(tokens.specials) == set(range(sum(map(len, tokens.word_positions)), 256))


def test_an_identity_is_refused_on_a_dit(flux, clip, inversion):
    with pytest.raises(ValueError, match="identity: S2Edit identities are trained on SD1.x/SDXL UNets; this model"):
        edit(flux, clip, inversion, identity=object())


@pytest.mark.parametrize("tokenizer", ["FluxTokenizer", "SD3Tokenizer", "QwenImageTokenizer"])
def test_words_are_found_in_each_encoders_part_and_a_word_swap_maps_token_for_token(comfy, tokenizer):
    from dit_helpers import stand_in_clip

    from precise_edit.nodes.attention.prompt_tokens import dit_text_parts
    from precise_edit.nodes.s2edit.prompt_to_prompt_tokens import dit_prompt_tokens, token_mapping

    clip = stand_in_clip(tokenizer)
    source, target = dit_prompt_tokens(clip, SOURCE, "source_text"), dit_prompt_tokens(clip, TARGET, "target_text")
    parts = dit_text_parts(clip, SOURCE)
    assert source.length == sum(len(part.tokens) for part in parts) == target.length
    assert source.words == tuple(SOURCE.split()) * len(parts)
    offset = 0
    for k, part in enumerate(parts):
        cat = source.word_positions[k * len(SOURCE.split()) + SOURCE.split().index("cat")]
        assert "cat" in "".join(part.tokenizer.inv_vocab[source.tokens[p]] for p in cat)
        assert all(offset <= p < offset + len(part.tokens) for p in cat)
        offset += len(part.tokens)
    mapper, alphas = token_mapping(source, target, "replace")
    assert alphas is None and torch.equal(mapper, torch.eye(source.length))


def test_flux2s_left_padding_shifts_every_position(comfy):
    from dit_helpers import stand_in_clip

    from precise_edit.nodes.s2edit.prompt_to_prompt_tokens import dit_prompt_tokens

    clip = stand_in_clip("FluxTokenizer")
    plain, padded = dit_prompt_tokens(clip, SOURCE, "source_text"), dit_prompt_tokens(clip, SOURCE, "s", 512)
    pad = 512 - plain.length
    assert padded.length == 512 and padded.specials[:pad] == tuple(range(pad))
    assert padded.word_positions == tuple(tuple(pad + p for p in word) for word in plain.word_positions)


def test_qwen_image_one_frame_latents_invert_with_guidance_and_take_the_edit(comfy):
    """Qwen-Image: video-shaped latents [1, 16, 1, h, w], its real tokenizer with the template cut, CFG 2."""
    from dataclasses import replace

    from harness.tiny_dit_models import tiny_qwen_image

    model, clip = tiny_qwen_image(), StandInTextEncoder("QwenImageTokenizer")
    source = source_latent()[:, :, None]
    inversion = invert(model, clip, guidance=2.0, latent=source, steps=8)
    assert inversion.unet_evaluations == 2 * 8
    error = float((reconstruct(model, clip, inversion) - source).square().mean())
    fresh = replace(inversion, noise=torch.randn(source.shape, generator=torch.Generator().manual_seed(1)))
    baseline = float((reconstruct(model, clip, fresh) - source).square().mean())
    print(f"tiny Qwen-Image round trip, 8 steps, CFG 2: MSE {error:.3g}; from fresh noise {baseline:.3g}")
    assert error < baseline / 10
    samples, seen, edit_plan = recorded_replay(model, clip, inversion)
    injected = [step for step, row in enumerate(edit_plan.cross_alpha) if bool(row.all())]
    calls_per_step = len(seen) // 8
    for i, (name, probs, _, _) in enumerate(seen):
        if i // calls_per_step in injected:
            torch.testing.assert_close(probs[1], probs[0], rtol=0, atol=0, msg=name)
    assert samples.shape == (2, 16, 1, *LATENT_HW) and not torch.equal(samples[0], samples[1])
