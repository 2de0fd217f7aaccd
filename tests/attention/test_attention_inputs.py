"""Word lookup with the real CLIP tokenizer, and the errors a user gets for bad input."""

import pytest
import torch
from attention_helpers import PROMPT, encode, inject, left_half_mask, sample
from safetensors.torch import save_file


def test_words_split_into_several_tokens_and_phrases_cover_all_their_tokens(sd15):
    from precise_edit.nodes.attention.prompt_tokens import locate_words

    found = locate_words(sd15.clip, "a zorbulon next to a red hat, and a red hat", "zorbulon, red hat")
    assert len(found.words["zorbulon"]) >= 2
    assert found.words["zorbulon"] == list(range(2, 2 + len(found.words["zorbulon"])))
    after = found.words["zorbulon"][-1]
    assert found.words["red hat"] == [after + 4, after + 5, after + 9, after + 10]
    assert found.context_length == 77


def test_embedding_tokens_are_found_by_name(sd15, comfy):
    from precise_edit.nodes.attention.prompt_tokens import locate_words

    vectors = torch.randn(2, 768, generator=torch.Generator().manual_seed(0))
    save_file({"clip_l": vectors}, str(comfy.models_dir / "embeddings" / "pe_test_identity.safetensors"))
    found = locate_words(sd15.clip, "a photo of embedding:pe_test_identity lady", "embedding:pe_test_identity, lady")
    assert found.words == {"embedding:pe_test_identity": [4, 5], "lady": [6]}


def test_a_word_in_the_second_chunk_of_a_long_prompt_indexes_the_long_context(sd15):
    from precise_edit.nodes.attention.prompt_tokens import locate_words

    text = " ".join(["landscape"] * 90) + " with a cat"
    found = locate_words(sd15.clip, text, "cat")
    assert found.context_length == 154
    assert found.words["cat"][0] > 77


def test_a_word_missing_from_the_prompt_is_named_with_the_prompt_tokens(sd15):
    with pytest.raises(ValueError) as error:
        inject(sd15.model, sd15.clip, "dog", left_half_mask())
    message = str(error.value)
    assert "'dog' is not in the prompt" in message
    assert "5:cat" in message and "9:hat" in message


@pytest.mark.parametrize(
    ("mask", "expected"),
    [
        (torch.zeros(1, 64, 64), "all zero"),
        (torch.zeros(0, 64, 64), "empty"),
        (torch.full((1, 8, 8), float("nan")), "NaN"),
        (torch.ones(2, 3, 8, 8), "must be"),
    ],
)
def test_unusable_masks_are_rejected_before_patching(sd15, mask, expected):
    with pytest.raises(ValueError, match=expected):
        inject(sd15.model, sd15.clip, "cat", mask)


def test_empty_words_are_rejected(sd15):
    with pytest.raises(ValueError, match="words is empty"):
        inject(sd15.model, sd15.clip, " , ", left_half_mask())


def test_a_mask_batch_that_does_not_match_the_latent_batch_fails_with_both_sizes(sd15):
    patched, _ = inject(sd15.model, sd15.clip, "cat", left_half_mask().repeat(3, 1, 1))
    with pytest.raises(ValueError, match="mask batch has 3 masks but the latent batch has 1"):
        sample(patched, encode(sd15.clip, PROMPT), encode(sd15.clip, "blurry"), steps=1)


def test_a_model_without_a_unet_gets_a_clear_error_and_is_not_patched(sd15):
    import comfy.model_patcher

    class DiT(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.diffusion_model = torch.nn.Linear(4, 4)

    model = comfy.model_patcher.ModelPatcher(DiT(), torch.device("cpu"), torch.device("cpu"))
    with pytest.raises(ValueError, match="not handle this model family yet: DiT with a Linear; supported DiT .* UNets"):
        inject(model, sd15.clip, "cat", left_half_mask())
    assert model.model_options == {"transformer_options": {}}
    assert not model.wrappers


def test_start_after_end_is_rejected(sd15):
    with pytest.raises(ValueError, match="start_percent"):
        inject(sd15.model, sd15.clip, "cat", left_half_mask(), start_percent=0.8, end_percent=0.2)
