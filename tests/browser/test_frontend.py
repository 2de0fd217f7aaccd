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


# Pairs of node ids whose boxes overlap as the frontend lays them out after loading (getBounding includes the title
# bar and the size the node grew to for its widgets); 4 px of touching borders are allowed.
OVERLAPPING_NODES = """() => {
    const boxes = app.graph.nodes.filter((node) => !node.flags?.collapsed).map((node) => {
        const [x, y, w, h] = node.getBounding();
        return [node.id, x, y, x + w, y + h];
    });
    const pairs = [];
    for (let i = 0; i < boxes.length; i++) {
        for (let j = i + 1; j < boxes.length; j++) {
            const [a, b] = [boxes[i], boxes[j]];
            if (a[1] < b[3] - 4 && b[1] < a[3] - 4 && a[2] < b[4] - 4 && b[2] < a[4] - 4) pairs.push([a[0], b[0]]);
        }
    }
    return pairs;
}"""


def test_every_example_workflow_loads_with_no_missing_node_types_and_no_overlap(comfy_page):
    assert EXAMPLE_WORKFLOWS, "no example workflows found"
    comfy_page.open()
    for path in EXAMPLE_WORKFLOWS:
        comfy_page.load_workflow(json.loads(path.read_text()), path.name)
        assert comfy_page.unregistered_node_types() == [], path.name
        count = comfy_page.evaluate("() => app.graph.nodes.length")
        assert count == len(json.loads(path.read_text())["nodes"]), path.name
        assert comfy_page.evaluate(OVERLAPPING_NODES) == [], f"{path.name}: nodes overlap as the frontend draws them"
    assert comfy_page.errors == []


def test_tiny_workflow_queued_from_the_ui_produces_its_image(comfy_page):
    comfy_page.open()
    comfy_page.load_api_prompt(capture_graph("cat"))
    height_before = comfy_page.evaluate("() => app.graph.getNodeById(2).size[1]")
    comfy_page.queue()
    outputs = comfy_page.wait_for_outputs(8)
    (image,) = outputs["images"]
    assert image["filename"].startswith("browser_tiny") and image["type"] == "output"
    assert (comfy_page.server.base_dir / "output" / image.get("subfolder", "") / image["filename"]).is_file()
    view = requests.get(f"{comfy_page.server.url}/view", params=image, timeout=30)
    assert view.status_code == 200 and view.content.startswith(b"\x89PNG")
    heatmap = comfy_page.wait_for_outputs(10)
    assert heatmap["images"][0]["type"] == "temp"
    # The capture node shows the recorded word's map over the sampled image once sampling ends.
    (maps,) = comfy_page.wait_for_outputs(2)["images"]
    assert maps["filename"].startswith("precise_edit_attention_2_") and maps["type"] == "temp"
    view = requests.get(f"{comfy_page.server.url}/view", params=maps, timeout=30)
    assert view.status_code == 200 and view.content.startswith(b"\x89PNG")
    assert comfy_page.evaluate("() => app.graph.getNodeById(2).size[1]") >= height_before + 200  # room for the maps
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
    page = comfy_page.page
    # Frontends up to 1.3x open a dialog with the message; later ones a toast whose "View details" opens it.
    page.wait_for_function(
        """() => document.body.innerText.includes("'dog' is not in the prompt")
            || [...document.querySelectorAll('button')].some(b => b.innerText.trim() === 'View details')""",
        timeout=180_000,
    )
    error = page.get_by_text("'dog' is not in the prompt", exact=False).first
    if not error.is_visible():
        page.get_by_role("button", name="View details").first.click()
    error.wait_for(timeout=30_000)
    assert "The prompt's tokens are: 1:a 2:photo 3:of 4:a 5:cat" in error.inner_text()
    comfy_page.screenshot("bad_input_error")


def test_every_pack_node_starts_with_its_text_inputs_set(comfy_page):
    """A new node shows an empty text box, never ``text: undefined`` (five text inputs had no default)."""
    comfy_page.open()
    types, unset = comfy_page.evaluate(
        """() => {
            const types = Object.keys(LiteGraph.registered_node_types).filter(t => t.startsWith('PreciseEdit_'));
            const unset = types.flatMap(type => {
                const inputs = LiteGraph.registered_node_types[type].nodeData.input;
                const texts = Object.entries({...inputs.required, ...inputs.optional})
                    .filter(([, spec]) => spec[0] === 'STRING');
                const node = LiteGraph.createNode(type);
                // The node preview of the node library shows the definition's default; the canvas the widget.
                return texts.filter(([name, spec]) => spec[1]?.default === undefined
                    || node.widgets?.find(w => w.name === name)?.value === undefined)
                    .map(([name]) => `${type}.${name}`);
            });
            return [types, unset];
        }"""
    )
    assert len(types) > 30
    assert unset == []


def test_sam_finding_no_mask_says_so_on_the_node(comfy_page):
    """The blank-mask fallback is shown under the SAM node (ComfyUI's progress text), not only in the server log."""
    comfy_page.open()
    comfy_page.evaluate(
        """() => {
            window.peProgressTexts = [];
            window.comfyAPI.api.api.addEventListener('progress_text', e => window.peProgressTexts.push(e.detail));
        }"""
    )
    comfy_page.load_api_prompt(
        {
            "1": {"class_type": "PreciseEdit_SAMLoader", "inputs": {"sam_name": "sam_vit_b_01ec64.pth"}},
            "2": {"class_type": "EmptyImage", "inputs": {"width": 40, "height": 48, "batch_size": 1, "color": 0}},
            "3": {
                "class_type": "PreciseEdit_SAMSegmentEverything",
                "inputs": {
                    "sam_model": ["1", 0],
                    "image": ["2", 0],
                    "points_per_side": 4,
                    "pred_iou_thresh": 1.0,
                    "stability_score_thresh": 1.0,
                    "if_none_pass": "blank_mask",
                },
            },
            "4": {"class_type": "MaskToImage", "inputs": {"mask": ["3", 0]}},
            "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}},
        }
    )
    comfy_page.queue()
    comfy_page.page.wait_for_function(
        "() => window.peProgressTexts.some(t => t.text.includes('SAM found no mask'))", timeout=180_000
    )
    (shown,) = comfy_page.evaluate("() => window.peProgressTexts.filter(t => t.text.includes('SAM found no mask'))")
    assert shown["nodeId"] == "3"
    assert shown["text"].endswith("outputting one blank mask")
    comfy_page.screenshot("sam_no_mask_warning")
    assert comfy_page.errors == []


def test_a_trainer_shows_its_loss_curve_on_the_node_while_it_trains(comfy_page):
    """Action Classifier Trainer on 12 instructions (the shipped 600 take minutes to encode on a CPU)."""
    dataset = comfy_page.server.base_dir / "browser_instructions.jsonl"
    rows = [(f"remove the {thing}", "remove") for thing in ("cat", "dog", "hat", "cup")]
    rows += [(f"add a {thing}", "add") for thing in ("cat", "dog", "hat", "cup")]
    rows += [(f"make the {thing} red", "change") for thing in ("cat", "dog", "hat", "cup")]
    dataset.write_text("".join(json.dumps({"instruction": i, "action": a}) + "\n" for i, a in rows))
    comfy_page.open()
    comfy_page.evaluate(
        """() => {
            window.pePreviews = [];
            window.peDone = false;
            const api = window.comfyAPI.api.api;
            api.addEventListener('b_preview_with_metadata', e => window.pePreviews.push(
                {node: String(e.detail.displayNodeId), type: e.detail.blob.type, size: e.detail.blob.size}));
            api.addEventListener('execution_success', () => { window.peDone = true; });
        }"""
    )
    comfy_page.load_api_prompt(
        {
            "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}},
            "2": {
                "class_type": "PreciseEdit_ActionClassifierTrainer",
                "inputs": {
                    "clip": ["1", 1],
                    "dataset": str(dataset),
                    "steps": 8,
                    "batch_size": 8,
                    "name": "browser_loss_curve",
                },
            },
        }
    )
    comfy_page.queue()
    comfy_page.page.wait_for_function(
        "() => window.pePreviews.filter(p => p.node === '2').length >= 2", timeout=180_000
    )
    previews = comfy_page.evaluate("() => window.pePreviews.filter(p => p.node === '2')")
    assert all(p["type"] in ("image/jpeg", "image/png") and p["size"] > 1000 for p in previews)
    comfy_page.page.wait_for_function("() => window.peDone", timeout=180_000)
    comfy_page.screenshot("trainer_loss_curve")
    assert comfy_page.errors == []
