"""Prompt-to-Prompt Edit with an S2Edit identity: the placeholders [I] and [A] are accepted in ``word_weights`` and
``blend_words`` as in ``word_cross_replace``, and name the same token positions as ``embedding:<name>``."""

import pytest
import torch

STEPS = 3
SOURCE = "a photo of a [I] cat with [A] stripes"
TARGET = "a photo of a [I] dog with [A] stripes"
IDENTITY_NAME, ATTRIBUTE_NAME = "pe_p2p_placeholder_identity", "pe_p2p_placeholder_attribute"
I_POSITION, A_POSITION = 5, 8
"""Token positions in both prompts: <start> a photo of a [I] cat|dog with [A] stripes."""


@pytest.fixture(scope="module")
def identity(comfy):
    import folder_paths
    import safetensors.torch

    from precise_edit.nodes.s2edit.identity import Identity, IdentityToken

    directory = folder_paths.get_folder_paths("embeddings")[0]
    generator = torch.Generator().manual_seed(11)
    mask = torch.zeros(1, 64, 96)
    mask[:, 16:48, 8:56] = 1.0
    tokens = []
    for placeholder, name, token_mask, subject in (
        ("[I]", IDENTITY_NAME, mask, "cat"),
        ("[A]", ATTRIBUTE_NAME, None, "stripes"),
    ):
        vector = torch.randn(1, 768, generator=generator) * 0.02
        safetensors.torch.save_file({"clip_l": vector}, f"{directory}/{name}.safetensors")
        tokens.append(
            IdentityToken(
                placeholder=placeholder,
                embedding_name=name,
                vectors={"clip_l": vector},
                mask=token_mask,
                source_prompt=SOURCE,
                subject=subject,
            )
        )
    return Identity(tokens=tuple(tokens), source_prompt=SOURCE, lora_name=None)


def plan(sd15, identity, word_weights: str = "", blend_words: str = ""):
    from precise_edit.nodes.s2edit.prompt_to_prompt_replay import plan_edit

    return plan_edit(
        sd15.clip,
        SOURCE,
        TARGET,
        STEPS,
        controller="auto",
        cross_replace=0.8,
        word_cross_replace="",
        self_replace=0.5,
        word_weights=word_weights,
        blend_words=blend_words,
        blend_threshold=0.3,
        identity=identity,
    )


def test_placeholders_in_word_weights_weight_the_learned_tokens(sd15, identity):
    with_placeholders = plan(sd15, identity, word_weights="[I]:2.0, [A]:0.5")
    with_embeddings = plan(
        sd15, identity, word_weights=f"embedding:{IDENTITY_NAME}:2.0, embedding:{ATTRIBUTE_NAME}:0.5"
    )
    weights = with_placeholders.edit.weights
    expected = torch.ones(with_placeholders.context_length)
    expected[I_POSITION], expected[A_POSITION] = 2.0, 0.5
    assert torch.equal(weights, expected)
    assert torch.equal(weights, with_embeddings.edit.weights)


def test_placeholders_in_blend_words_blend_the_learned_tokens_regions(sd15, identity):
    with_placeholders = plan(sd15, identity, blend_words="[I], [A], dog")
    with_embeddings = plan(sd15, identity, blend_words=f"embedding:{IDENTITY_NAME}, embedding:{ATTRIBUTE_NAME}, dog")
    blend = with_placeholders.blend
    assert blend.source_positions == (I_POSITION, A_POSITION)
    assert blend.target_positions == (I_POSITION, 6, A_POSITION)
    assert blend == with_embeddings.blend
