"""The attention nodes on DiT models: word positions from the DiT's text encoder, masks, captures, bad inputs."""

import pytest
import torch
from dit_helpers import GRID, STAND_INS, sample, stand_in_clip

PROMPT = "a photo of a cat wearing a red hat"


@pytest.fixture(scope="module")
def clips(comfy):
    return {
        "flux": stand_in_clip("FluxTokenizer"),
        "qwen_image": stand_in_clip("QwenImageTokenizer"),
        "sd3": stand_in_clip("SD3Tokenizer"),
        "sd3_no_t5": stand_in_clip("SD3Tokenizer", t5=False),
    }


def conditioning(tokens: int, seed: int) -> list:
    from harness.tiny_dit_models import random_conditioning

    return random_conditioning(tokens, seed, guidance=3.5)


def test_word_positions_follow_the_sequence_each_dit_attends_to(clips):
    from precise_edit.nodes.attention.prompt_tokens import locate_dit_words

    flux = locate_dit_words(clips["flux"], PROMPT, "cat, red hat")
    t5 = [entry[0] for entry in clips["flux"].tokenizer.t5xxl.tokenize_with_weights(PROMPT)[0]]
    assert flux.context_length == len(t5) == 256
    assert [t5[p] for p in flux.words["cat"]] == [1712]

    qwen = locate_dit_words(clips["qwen_image"], PROMPT, "cat, red hat")
    assert qwen.context_length == 14, "ComfyUI drops the template up to '<|im_start|>user\\n'"
    assert qwen.words == {"cat": [4], "red hat": [7, 8]}

    sd3 = locate_dit_words(clips["sd3"], PROMPT, "cat")
    assert sd3.context_length == 77 + 77
    assert sd3.words["cat"][0] == 5 and sd3.words["cat"][1] >= 77, "CLIP-L's and T5's tokens of the word"
    assert locate_dit_words(clips["sd3_no_t5"], PROMPT, "cat").words["cat"] == [5]


def test_a_word_not_in_the_prompt_names_the_word_and_the_prompts_tokens(clips):
    from precise_edit.nodes.attention.prompt_tokens import locate_dit_words

    with pytest.raises(ValueError, match=r"'dog' is not in the prompt.*4:cat.*8:hat"):
        locate_dit_words(clips["qwen_image"], PROMPT, "dog")


def inject(model, clip, words, mask, **options):
    from precise_edit.nodes.attention.nodes_attention import AttentionMaskInjector

    settings = dict(strength=1.0, start_percent=0.0, end_percent=1.0, target="positive", renormalize=False)
    settings.update(options)
    return AttentionMaskInjector.execute(model, clip, PROMPT, words, mask, **settings).result


def capture(model, clip, words):
    from precise_edit.nodes.attention.nodes_attention import CaptureCrossAttention

    settings = dict(layers="all", heads="all", start_percent=0.0, end_percent=1.0, target="positive")
    return CaptureCrossAttention.execute(model, clip, PROMPT, words, **settings).result


@pytest.mark.parametrize("family", ["flux", "flux2", "qwen_image", "sd3"])
def test_the_injector_confines_a_word_and_the_capture_and_masks_show_it(comfy, clips, family):
    from precise_edit.nodes.attention.dit_layers import dit_family
    from precise_edit.nodes.attention.nodes_attention import AttentionToMask
    from precise_edit.nodes.attention.prompt_tokens import locate_dit_words

    stand_in = STAND_INS[family]
    clip = clips["flux" if family == "flux2" else family]
    base = stand_in.model()
    mask = torch.zeros(1, 48, 80)
    mask[:, :, :32] = 1.0
    model, _ = inject(base, clip, "cat", mask)
    model, store, _ = capture(model, clip, "cat, hat")
    tokens = stand_in.text(locate_dit_words(clip, PROMPT, "cat").context_length)
    latent = stand_in.latent()
    sample(model, latent, conditioning(tokens, 1), conditioning(tokens, 2))
    assert sorted(store.layers) == sorted(block.name for block in dit_family(base).blocks)
    outside = torch.ones(GRID, dtype=torch.bool)
    outside[:, :2] = False
    cat, hat = store.words["cat"], store.words["hat"]
    for name, entry in store.layers.items():
        assert entry.grid == GRID and entry.count == 2, name
        means = entry.mean[0].view(*GRID, tokens)
        assert torch.all(means[outside][:, cat] == 0) and torch.all(means[~outside][:, cat] > 0), name
        assert torch.all(means[outside][:, hat] > 0), name
    masks, heatmaps = AttentionToMask.execute(store, {"samples": latent}, 0.0).result
    assert masks.shape == (2, 48, 80) and heatmaps.shape == (2, 48, 80, 3), "1/8 of the image, 1/16 for Flux.2"


def test_qwen_image_edit_words_are_counted_from_the_end_of_the_connected_conditioning(comfy, clips):
    """Qwen-Image-Edit's encoder puts the input image's vision tokens before the prompt: with the conditioning
    connected, the word's column is found from the end of the encoded sequence."""
    from precise_edit.nodes.attention.nodes_attention import AttentionMaskInjector, CaptureCrossAttention
    from precise_edit.nodes.attention.prompt_tokens import locate_dit_words

    stand_in = STAND_INS["qwen_image"]
    clip = clips["qwen_image"]
    vision_tokens = 20
    prompt = locate_dit_words(clip, PROMPT, "cat")
    encoded = conditioning(prompt.context_length + vision_tokens, 1)
    mask = torch.zeros(1, 48, 80)
    mask[:, :, :32] = 1.0
    settings = dict(strength=1.0, start_percent=0.0, end_percent=1.0, target="positive", renormalize=False)
    model, tagged = AttentionMaskInjector.execute(
        stand_in.model(), clip, PROMPT, "cat", mask, **settings, conditioning=encoded
    ).result
    model, store, tagged = CaptureCrossAttention.execute(
        model,
        clip,
        PROMPT,
        "cat",
        layers="all",
        heads="all",
        start_percent=0.0,
        end_percent=1.0,
        target="positive",
        conditioning=tagged,
    ).result
    sample(model, stand_in.latent(), tagged, conditioning(prompt.context_length, 2))
    column = prompt.words["cat"][0] + vision_tokens
    assert store.words["cat"] == [column]
    outside = torch.ones(GRID, dtype=torch.bool)
    outside[:, :2] = False
    for name, entry in store.layers.items():
        means = entry.mean[0].view(*GRID, prompt.context_length + vision_tokens)
        assert torch.all(means[outside][:, column] == 0) and torch.all(means[~outside][:, column] > 0), name


def test_bad_inputs_are_refused_and_nothing_stays_patched(comfy, clips):
    from precise_edit.nodes.attention.dit_attention_patch import OVERRIDE_KEY
    from precise_edit.nodes.attention.prompt_tokens import locate_dit_words

    stand_in = STAND_INS["flux"]
    base = stand_in.model()
    options_before = repr(base.model_options)
    clip = clips["flux"]
    with pytest.raises(ValueError, match="renormalize is not available on Flux.1/Kontext"):
        inject(base, clip, "cat", torch.ones(1, 48, 80), renormalize=True)
    with pytest.raises(ValueError, match="'dog' is not in the prompt"):
        inject(base, clip, "dog", torch.ones(1, 48, 80))
    model, _ = inject(base, clip, "cat", torch.ones(3, 48, 80))
    tokens = locate_dit_words(clip, PROMPT, "cat").context_length
    with pytest.raises(ValueError, match="the mask batch has 3 masks but the latent batch has 1 images"):
        sample(model, stand_in.latent(), conditioning(tokens, 1), conditioning(tokens, 2))
    assert OVERRIDE_KEY not in model.model_options.get("transformer_options", {})
    assert repr(base.model_options) == options_before and not base.wrappers
    stock = sample(base, stand_in.latent(), conditioning(tokens, 1), conditioning(tokens, 2))
    assert torch.isfinite(stock).all()


def test_an_unsupported_family_names_itself_and_the_supported_ones(comfy, clips):
    from harness.tiny_dit_models import tiny_lumina2

    with pytest.raises(ValueError, match=r"Lumina2 with a NextDiT.*Flux\.1, Flux Kontext, Flux\.2, Qwen-Image.*SD3"):
        inject(tiny_lumina2(), clips["flux"], "cat", torch.ones(1, 48, 80))
