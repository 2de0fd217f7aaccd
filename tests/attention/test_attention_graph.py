"""Our attention nodes as a user wires them, executed in process by ComfyUI's PromptExecutor."""

import pytest
import torch
from attention_helpers import PROMPT, SD15

from harness.errors import PromptFailed


def graph(words: str = "cat", positive_from_injector: bool = False) -> dict:
    """Loader → injector (cat: left half) → capture (cat, hat) → KSampler → Attention To Mask."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": SD15}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": PROMPT}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "blurry"}},
        "4": {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 96, "height": 64}},
        "5": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 48, "height": 64}},
        "6": {
            "class_type": "MaskComposite",
            "inputs": {"destination": ["4", 0], "source": ["5", 0], "x": 0, "y": 0, "operation": "add"},
        },
        "7": {
            "class_type": "PreciseEdit_AttentionMaskInjector",
            "inputs": {
                "model": ["1", 0],
                "clip": ["1", 1],
                "text": PROMPT,
                "words": words,
                "mask": ["6", 0],
                "strength": 1.0,
                "start_percent": 0.0,
                "end_percent": 1.0,
                "target": "positive",
                "renormalize": False,
            },
        },
        "8": {
            "class_type": "PreciseEdit_CaptureCrossAttention",
            "inputs": {
                "model": ["7", 0],
                "clip": ["1", 1],
                "text": PROMPT,
                "words": "cat, hat",
                "layers": "all",
                "heads": "all",
                "start_percent": 0.0,
                "end_percent": 1.0,
                "target": "positive",
            },
        },
        "9": {"class_type": "EmptyLatentImage", "inputs": {"width": 96, "height": 64, "batch_size": 1}},
        "10": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["8", 0],
                "positive": ["7", 1] if positive_from_injector else ["2", 0],
                "negative": ["3", 0],
                "latent_image": ["9", 0],
                "seed": 11,
                "steps": 2,
                "cfg": 5.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
            },
        },
        "11": {
            "class_type": "PreciseEdit_AttentionToMask",
            "inputs": {"attention": ["8", 1], "latent": ["10", 0], "threshold": 0.0},
        },
        "12": {"class_type": "PreviewImage", "inputs": {"images": ["11", 1]}},
    }


@pytest.mark.slow
def test_the_graph_runs_and_returns_a_mask_per_word_confined_where_masked(run_graph, tiny_models):
    mask, heatmap = run_graph(graph(), outputs=["11"])["11"]
    assert mask.shape == (2, 64, 96) and heatmap.shape == (2, 64, 96, 3)
    assert torch.isfinite(mask).all() and mask.max() == 1.0
    cat, hat = mask
    assert cat[:, 72:].max() == 0 and cat[:, :40].min() > 0
    assert hat[:, 72:].min() > 0


def test_a_missing_word_stops_the_graph_with_the_word_and_the_prompt_tokens(run_graph, tiny_models):
    with pytest.raises(PromptFailed) as failure:
        run_graph(graph(words="dog"), outputs=["11"])
    assert failure.value.node_id == "7"
    assert "'dog' is not in the prompt" in str(failure.value) and "5:cat" in str(failure.value)
    mask, _ = run_graph(graph(), outputs=["11"])["11"]
    assert mask.shape == (2, 64, 96)


def test_using_the_conditioning_output_without_an_input_explains_itself(run_graph, tiny_models):
    with pytest.raises(PromptFailed, match="only set when a conditioning is connected"):
        run_graph(graph(positive_from_injector=True), outputs=["11"])
