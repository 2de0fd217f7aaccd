"""The pack in the real ComfyUI frontend: example workflows load, a graph queued from the UI gives its image, the
token view marks a word that is not in the prompt (classic canvas and Nodes 2.0), and a bad input shows the pack's
own error text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
# The example workflows (ComfyUI's template folder, or the older workflows/ folder).
EXAMPLE_WORKFLOWS = sorted(p for folder in ("example_workflows", "workflows") for p in (REPO / folder).glob("*.json"))
CHECKPOINT = "v1-5-pruned-emaonly-fp16.safetensors"
PROMPT = "a photo of a cat"


def capture_graph(words: str) -> dict:
    """Checkpoint → Capture Cross-Attention → KSampler (2 steps, 64 px) → VAE Decode → Save Image, the maps to
    Attention To Mask; API format."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}},
        "2": {
            "class_type": "PreciseEdit_CaptureCrossAttention",
            "inputs": {
                "model": ["1", 0],
                "clip": ["1", 1],
                "text": PROMPT,
                "words": words,
                "layers": "all",
                "heads": "all",
                "start_percent": 0.0,
                "end_percent": 1.0,
                "target": "positive",
            },
        },
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": PROMPT}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "6": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["2", 0],
                "positive": ["3", 0],
                "negative": ["4", 0],
                "latent_image": ["5", 0],
                "seed": 1,
                "control_after_generate": "fixed",
                "steps": 2,
                "cfg": 5.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
            },
        },
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["1", 2]}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "browser_tiny"}},
        "9": {
            "class_type": "PreciseEdit_AttentionToMask",
            "inputs": {"attention": ["2", 1], "latent": ["6", 0], "threshold": 0.5},
        },
        "10": {"class_type": "PreviewImage", "inputs": {"images": ["9", 1]}},
    }


def token_view_graph(words: str) -> dict:
    graph = capture_graph(words)
    return {key: graph[key] for key in ("1", "2")}


def test_every_example_workflow_loads_with_no_missing_node_types(comfy_page):
    assert EXAMPLE_WORKFLOWS, "no example workflows found"
    comfy_page.open()
    for path in EXAMPLE_WORKFLOWS:
        comfy_page.load_workflow(json.loads(path.read_text()), path.name)
        assert comfy_page.unregistered_node_types() == [], path.name
        count = comfy_page.evaluate("() => app.graph.nodes.length")
        assert count == len(json.loads(path.read_text())["nodes"]), path.name
    assert comfy_page.errors == []


def test_tiny_workflow_queued_from_the_ui_produces_its_image(comfy_page):
    comfy_page.open()
    comfy_page.load_api_prompt(capture_graph("cat"))
    comfy_page.queue()
    outputs = comfy_page.wait_for_outputs(8)
    (image,) = outputs["images"]
    assert image["filename"].startswith("browser_tiny") and image["type"] == "output"
    assert (comfy_page.server.base_dir / "output" / image.get("subfolder", "") / image["filename"]).is_file()
    view = requests.get(f"{comfy_page.server.url}/view", params=image, timeout=30)
    assert view.status_code == 200 and view.content.startswith(b"\x89PNG")
    heatmap = comfy_page.wait_for_outputs(10)
    assert heatmap["images"][0]["type"] == "temp"
    comfy_page.screenshot("tiny_workflow_queued")
    assert comfy_page.errors == []


@pytest.mark.parametrize("vue_nodes", [False, True], ids=["classic", "nodes2"])
def test_token_view_marks_a_missing_word_and_a_chip_adds_one(comfy_page, vue_nodes):
    comfy_page.open(vue_nodes=vue_nodes)
    comfy_page.load_api_prompt(token_view_graph("cat, dog"))
    page = comfy_page.page
    view = page.locator(".pe-token-view")
    missing = view.locator(".pe-missing")
    missing.first.wait_for(timeout=30_000)
    assert missing.all_inner_texts() == ["dog"]
    chips = view.locator(".pe-chip")
    assert chips.all_inner_texts() == ["a", "photo", "of", "a", "cat"]
    assert view.locator(".pe-chip.pe-chosen").all_inner_texts() == ["cat"]
    view.locator('.pe-chip[data-word="photo"]').click()
    assert comfy_page.widget_value(2, "words") == "cat, dog, photo"
    comfy_page.set_widget_value(2, "words", "cat, photo")
    missing.first.wait_for(state="detached", timeout=30_000)
    comfy_page.screenshot(f"token_view_{'nodes2' if vue_nodes else 'classic'}")
    assert comfy_page.errors == []


def test_a_bad_input_shows_the_packs_error_text(comfy_page):
    comfy_page.open()
    comfy_page.load_api_prompt(capture_graph("dog"))
    comfy_page.queue()
    error = comfy_page.page.get_by_text("'dog' is not in the prompt", exact=False)
    error.first.wait_for(timeout=180_000)
    comfy_page.screenshot("bad_input_error")
