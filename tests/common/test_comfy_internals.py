"""The ComfyUI internals the pack relies on, each pinned by the shape the pack expects of it.

These fail when a ComfyUI release changes one of them (as later releases changed the tokenizer hook's tuple, made
the output cache's ``get`` a coroutine and added a cache setting), so the break shows up here, named, instead of as
a wrong edit. Run them on every ComfyUI the pack claims to support (``make test`` and ``make test-comfy033``).
"""

import inspect
import re

import pytest
import torch
from attention_helpers import PROMPT, encode, sample

PLACEHOLDER = "pe_internals"


def test_the_placeholder_lookup_returns_the_tuple_of_comfyuis_own_lookup(sd15):
    """``SDTokenizer._try_get_embedding`` returns ``(embed, leftover)`` or ``(embed, embedding_name, leftover)``; the
    identity trainer's placeholder lookup must return the same tuple with only the embedding replaced."""
    from precise_edit.nodes.s2edit.identity_training import PlaceholderTokenizer

    inner = sd15.clip.tokenizer.clip_l
    original = inner._try_get_embedding("pe_not_a_file a photo")
    assert isinstance(original, tuple) and len(original) in (2, 3)
    assert original[0] is None and original[-1] == "a photo"

    vector = torch.arange(768, dtype=torch.float32)[None] / 768
    tokenizer = PlaceholderTokenizer(sd15.clip, {PLACEHOLDER: {inner.embedding_key: vector}})
    patched = tokenizer.tokenizer.clip_l._try_get_embedding(f"{PLACEHOLDER} a photo")
    expected_rest = inner._try_get_embedding(f"{PLACEHOLDER} a photo")[1:]
    assert len(patched) == len(original) and patched[0] is vector and patched[1:] == expected_rest

    tokens = tokenizer.tokenize(f"a photo of embedding:{PLACEHOLDER} lady")["l"][0]
    assert sum(1 for token, *_ in tokens if isinstance(token, torch.Tensor) and torch.equal(token, vector[0])) == 1


def test_the_harness_passes_every_cache_setting_the_executor_reads(comfy):
    """PromptExecutor indexes ``cache_args`` by key (0.33 added ``ram_inactive``); a missing one is a KeyError."""
    import execution

    from harness.executor import CACHE_ARGS

    source = inspect.getsource(execution.PromptExecutor)
    read = set(re.findall(r"cache_args\[\s*[\"'](\w+)[\"']\s*\]", source))
    assert read and read <= set(CACHE_ARGS)


def test_the_output_cache_has_a_synchronous_accessor(run_graph, tiny_models):
    """The harness reads node outputs with ``get_local`` where the cache has it (its ``get`` became a coroutine),
    else with ``get``, which must then be synchronous."""
    import execution
    from comfy_execution.caching import HierarchicalCache

    from harness.executor import CACHE_ARGS

    outputs = execution.CacheSet(cache_type=execution.CacheType.CLASSIC, cache_args=CACHE_ARGS).outputs
    assert isinstance(outputs, HierarchicalCache)
    accessor = getattr(outputs, "get_local", None) or outputs.get
    assert not inspect.iscoroutinefunction(accessor)
    empty = run_graph(
        {"1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}}, ["1"]
    )
    assert empty["1"][0]["samples"].shape == (1, 4, 8, 8)


def test_cast_to_lives_in_model_management(comfy):
    import comfy.model_management

    parameters = list(inspect.signature(comfy.model_management.cast_to).parameters)
    assert parameters[:3] == ["weight", "dtype", "device"]
    weight = torch.ones(2, dtype=torch.float16)
    cast = comfy.model_management.cast_to(weight, dtype=torch.float32, device=torch.device("cpu"))
    assert cast.dtype == torch.float32 and torch.equal(cast, weight.float())


def test_the_guider_calls_a_sampler_and_calc_cond_batch_as_prepared_model_expects(comfy):
    """``run_prepared`` stands in for a Sampler and calls ``calc_cond_batch`` itself."""
    import comfy.samplers

    sample_parameters = list(inspect.signature(comfy.samplers.KSAMPLER.sample).parameters)
    assert sample_parameters[:9] == [
        "self",
        "model_wrap",
        "sigmas",
        "extra_args",
        "callback",
        "noise",
        "latent_image",
        "denoise_mask",
        "disable_pbar",
    ]
    batch_parameters = list(inspect.signature(comfy.samplers.calc_cond_batch).parameters)
    assert batch_parameters == ["model", "conds", "x_in", "timestep", "model_options"]


def test_a_multi_gpu_calc_cond_batch_is_keyed_by_multigpu_clones(comfy):
    """Inversion and training refuse a model whose options carry ``multigpu_clones``: that must stay the key that
    sends ``calc_cond_batch`` to its gradient-free worker threads, on a ComfyUI that has such a path."""
    import comfy.samplers

    source = inspect.getsource(comfy.samplers)
    if "multigpu" in source:
        assert re.search(r"if\s+['\"]multigpu_clones['\"]\s+in\s+model_options", source)


def test_the_differentiable_clip_layer_computes_the_stock_layer(comfy):
    """The identity trainer swaps ``CLIPLayer.forward`` for an out-of-place copy; both must give the same values."""
    import comfy.ops
    from comfy.clip_model import CLIPLayer
    from comfy.ldm.modules.attention import optimized_attention_for_device

    from precise_edit.nodes.s2edit.identity_training import _residual_forward

    assert list(inspect.signature(CLIPLayer.forward).parameters) == ["self", "x", "mask", "optimized_attention"]
    torch.manual_seed(0)
    layer = CLIPLayer(32, 4, 64, "gelu", torch.float32, "cpu", comfy.ops.manual_cast)
    for parameter in layer.parameters():
        torch.nn.init.normal_(parameter, std=0.2)
    x = torch.randn(2, 5, 32)
    attention = optimized_attention_for_device(x.device, small_input=True)
    with torch.no_grad():
        expected = layer(x.clone(), None, attention)
        assert torch.allclose(_residual_forward(layer, x.clone(), None, attention), expected, atol=1e-6)


def test_patched_layers_call_the_same_attention_kernel_as_stock_layers(sd15):
    """Our attn1/attn2 replaces call ComfyUI's attention with what a stock layer passes: the same function and the
    same keywords, so a per-layer setting a ComfyUI adds to its attention calls shows up here as a difference."""
    from precise_edit.core.attention.attention_store import AttentionStore
    from precise_edit.nodes.attention.attention_capture import AttentionCapture
    from precise_edit.nodes.attention.attention_effect import PromptTarget, StepRange
    from precise_edit.nodes.attention.cross_attention_patch import add_cross_attention_effect, cross_attention_layers
    from precise_edit.nodes.attention.self_attention_patch import add_self_attention_replace

    calls: dict[bool, set] = {True: set(), False: set()}

    def record(func, *args, **kwargs):
        patched_layer = "n_heads" in kwargs["transformer_options"]  # extra_options, which our replaces pass on
        names = frozenset(kwargs) - {"transformer_options", "_inside_attn_wrapper"}
        calls[patched_layer].add((func, names))
        return func(*args, **kwargs)

    layers = cross_attention_layers(sd15.model)
    steps = StepRange.from_percent(sd15.model, 0.0, 1.0)
    store = AttentionStore(words={"cat": [5]})
    capture = AttentionCapture(store=store, context_length=77, heads=None, steps=steps, target=PromptTarget(role="all"))
    model = add_cross_attention_effect(sd15.model, capture, layers[:1])
    model = add_self_attention_replace(model, steps, PromptTarget(role="all"), layers[-1:])
    model.model_options["transformer_options"]["optimized_attention_override"] = record
    sample(model, encode(sd15.clip, PROMPT), encode(sd15.clip, ""), steps=1)
    assert store.layers and calls[True] and calls[False]
    assert calls[True] == calls[False]


@pytest.mark.parametrize("key", ["attn1", "attn2"])
def test_patches_replace_keys_reach_the_transformer_block(sd15, key):
    """The pack installs replaces under ``(block_name, block_id, transformer_index)``; every layer it lists must be
    called under that key with the extra options it reads."""
    from precise_edit.nodes.attention.cross_attention_patch import cross_attention_layers

    layers = cross_attention_layers(sd15.model)
    seen = {}

    def replace_for(layer_key):
        def attention(q, k, v, extra_options):
            from comfy.ldm.modules.attention import optimized_attention

            seen[layer_key] = set(extra_options)
            heads = extra_options["n_heads"]
            return optimized_attention(q, k, v, heads, attn_precision=extra_options.get("attn_precision"))

        return attention

    model = sd15.model.clone()
    for layer in layers:
        setter = model.set_model_attn1_replace if key == "attn1" else model.set_model_attn2_replace
        setter(replace_for(layer.key), *layer.key)
    sample(model, encode(sd15.clip, PROMPT), encode(sd15.clip, ""), steps=1)
    assert set(seen) == {layer.key for layer in layers}
    needed = {"n_heads", "attn_precision", "activations_shape", "cond_or_uncond", "sigmas"}
    assert all(needed <= options for options in seen.values())
