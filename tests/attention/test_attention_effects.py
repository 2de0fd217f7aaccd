"""The open attention-effect protocol: effects defined in this file run in the cross-attention patch unchanged."""

import copy
from dataclasses import dataclass, field

import pytest
import torch
from attention_helpers import PROMPT, encode, left_half_mask, sample

WORD = 5
"""The token column of "cat" in PROMPT."""


def zero_word_effect(changed: str):
    """An effect that zeroes column WORD of its own rows and says it changed that column (or every column)."""
    from precise_edit.nodes.attention.attention_effect import ALL, AttentionEffect, PromptTarget, StepRange

    @dataclass(frozen=True, eq=False)
    class ZeroWord(AttentionEffect):
        steps: StepRange
        target: PromptTarget

        def apply(self, probabilities, context):
            zeroed = probabilities.clone()
            zeroed[context.selected_rows(), :, :, WORD] = 0.0
            return zeroed, (WORD,) if changed == "column" else ALL

    return ZeroWord(StepRange(1e9, 0.0), PromptTarget(role="positive"))


def call_counter():
    """A recorder: counts the calls it sees (layer, sigma, its rows) and only reads."""
    from precise_edit.nodes.attention.attention_effect import NONE, AttentionEffect, PromptTarget, StepRange

    @dataclass(eq=False)
    class CallCounter(AttentionEffect):
        steps: StepRange
        target: PromptTarget
        calls: list = field(default_factory=list)

        def begin_run(self) -> None:
            self.calls.clear()

        def apply(self, probabilities, context):
            self.calls.append((context.layer.name, context.call.sigma, int(context.selected_rows().numel())))
            return probabilities, NONE

    return CallCounter(StepRange(1e9, 0.0), PromptTarget(role="positive"))


def layer_call(patch):
    """q, k, v, extra_options of one call of the ("input", 1, 0) layer: [positive, negative], an 8×12 token grid."""
    from precise_edit.nodes.attention.attention_effect import CallInfo, CondInfo
    from precise_edit.nodes.attention.patch_install import CALL_KEY

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, tokens, 320, generator=g) for tokens in (96, 77, 77))
    chunks = (CondInfo("positive", frozenset()), CondInfo("negative", frozenset()))
    extra = {
        "n_heads": 8,
        "cond_or_uncond": [0, 1],
        "sigmas": torch.tensor([1.0, 1.0]),
        "activations_shape": [2, 320, 8, 12],
        CALL_KEY: CallInfo(1.0, chunks, {}),
    }
    return q, k, v, extra


@pytest.mark.parametrize("changed", ["column", "all"])
def test_an_effect_defined_outside_the_patch_gives_the_reference_output(sd15, changed):
    """O* = A* V with A* = A with the word's column zeroed on the positive row only (core's reference maths), and
    a capture after it records the zeroed column: effects run in order on one probability tensor."""
    from precise_edit.core.attention.attention_store import AttentionStore
    from precise_edit.core.attention.cross_attention import attention_output, attention_probabilities
    from precise_edit.nodes.attention.attention_capture import AttentionCapture
    from precise_edit.nodes.attention.attention_effect import PromptTarget, StepRange
    from precise_edit.nodes.attention.cross_attention_patch import add_cross_attention_effect, cross_attention_layers

    layers = cross_attention_layers(sd15.model)
    store = AttentionStore()
    capture = AttentionCapture(
        store=store, context_length=77, heads=None, steps=StepRange(1e9, 0.0), target=PromptTarget(role="positive")
    )
    model = add_cross_attention_effect(sd15.model, zero_word_effect(changed), layers)
    model = add_cross_attention_effect(model, capture, layers)
    patch = model.model_options["transformer_options"]["patches_replace"]["attn2"][("input", 1, 0)]

    q, k, v, extra = layer_call(patch)
    reference = attention_probabilities(q, k, 8)
    reference[0, :, :, WORD] = 0.0
    expected = attention_output(reference, v)
    out = patch(q, k, v, extra)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert (out[0] - attention_output(attention_probabilities(q, k, 8), v)[0]).abs().max() > 1e-3
    recorded = store.layers["input_1_0"].mean
    assert recorded.shape == (1, 96, 77) and torch.all(recorded[..., WORD] == 0)
    assert torch.all(recorded[..., WORD + 1] > 0)


def test_a_recorder_defined_outside_the_patch_sees_every_call_and_leaves_sampling_bit_identical(sd15):
    """A recorder returns NONE: no correction is added, so sampling is exactly stock; begin_run starts each run."""
    from precise_edit.nodes.attention.cross_attention_patch import add_cross_attention_effect, cross_attention_layers

    layers = cross_attention_layers(sd15.model)
    counter = call_counter()
    model = add_cross_attention_effect(sd15.model, counter, layers)
    positive, negative = encode(sd15.clip, PROMPT), encode(sd15.clip, "blurry")
    stock = sample(sd15.model, positive, negative, steps=2)
    for _ in range(2):
        assert torch.equal(sample(model, positive, negative, steps=2), stock)
        assert len(counter.calls) == 2 * len(layers), "one call per layer and step, counted afresh each run"
        assert {name for name, _, _ in counter.calls} == {layer.name for layer in layers}
        assert len({sigma for _, sigma, _ in counter.calls}) == 2
        assert all(rows == 1 for _, _, rows in counter.calls), "only the positive prompt's row is the counter's"


def test_a_deep_copied_model_shares_effects_masks_and_stores_and_owns_its_patches(sd15):
    """ComfyUI 0.3.x deep-copies model_options on clone: patches get an own copy (another pack may add to it),
    whatever they hold is shared (a capture keeps writing into the store the node returned)."""
    from attention_helpers import capture, inject

    from precise_edit.nodes.attention.attention_effect import PromptTarget, StepRange
    from precise_edit.nodes.attention.cross_attention_patch import cross_attention_layers
    from precise_edit.nodes.attention.self_attention_patch import add_self_attention_replace

    model, _ = inject(sd15.model, sd15.clip, "cat", left_half_mask())
    model, store, _ = capture(model, sd15.clip, "cat")
    model = add_self_attention_replace(model, StepRange(1e9, 0.0), PromptTarget(), cross_attention_layers(model))
    replaces = model.model_options["transformer_options"]["patches_replace"]
    copied = copy.deepcopy(model.model_options)["transformer_options"]["patches_replace"]
    for key, patch in replaces["attn2"].items():
        own = copied["attn2"][key]
        assert own is not patch and own.effects is patch.effects and own.indices is patch.indices
        mask, recorder = patch.effects
        assert copy.deepcopy(mask).mask.data_ptr() == mask.mask.data_ptr()
        assert copy.deepcopy(recorder).store is store
    assert all(copied["attn1"][key] is patch for key, patch in replaces["attn1"].items())
