"""The harness itself: tiny models detected by the stock loaders, prompts run in process and on a real server,
UI-to-API conversion, and node definitions served by /object_info."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
import torch
from PIL import Image

from harness.comfy_env import ComfyDirs

if TYPE_CHECKING:
    from harness.server import ComfyServer

RunGraph = Callable[..., dict[str, tuple[Any, ...]]]
Models = dict[str, Path]

SD15 = "v1-5-pruned-emaonly-fp16.safetensors"


def stock_graph(seed: int, prefix: str = "harness") -> dict[str, Any]:
    """CheckpointLoaderSimple -> CLIPTextEncode x2 -> EmptyLatentImage 64x64 -> KSampler -> VAEDecode -> SaveImage."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": SD15}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a photo of a cat", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "seed": seed,
                "steps": 3,
                "cfg": 7.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "positive": ["2", 0],
                "negative": ["3", 0],
                "latent_image": ["4", 0],
                "denoise": 1.0,
            },
        },
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": prefix}},
    }


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("tiny-sd15.safetensors", "SD15"),
        (SD15, "SD15"),
        ("instruct-pix2pix-00-22000.safetensors", "SD15_instructpix2pix"),
    ],
)
def test_stock_checkpoint_loader_detects_the_tiny_checkpoints(
    comfy: ComfyDirs, tiny_models: Models, name: str, expected: str
) -> None:
    import nodes

    model, clip, vae = nodes.CheckpointLoaderSimple().load_checkpoint(name)[:3]
    assert type(model.model.model_config).__name__ == expected
    assert clip is not None and vae is not None


def test_stock_unet_loader_detects_the_tiny_sdxl_unet_and_it_samples(comfy: ComfyDirs, tiny_models: Models) -> None:
    import comfy.sample as comfy_sample

    import nodes

    model = nodes.UNETLoader().load_unet("tiny-sdxl-unet.safetensors", "default")[0]
    assert type(model.model.model_config).__name__ == "SDXL"
    cond = [[torch.randn(1, 77, 2048), {"pooled_output": torch.randn(1, 1280)}]]
    latent = torch.zeros(1, 4, 8, 8)
    noise = comfy_sample.prepare_noise(latent, 0)
    samples = comfy_sample.sample(model, noise, 2, 5.0, "euler", "normal", cond, cond, latent, disable_pbar=True)
    assert samples.shape == latent.shape and torch.isfinite(samples).all()


def test_the_cell_vae_encodes_cell_colours_at_unit_scale_and_decodes_them(comfy: ComfyDirs, tiny_models: Models):
    """Through the stock VAELoader / VAEEncode / VAEDecode: a latent cell is (mean colour − 0.5) / 0.025, and the
    decoded image is the cell's mean colour (up to TAESD's tanh clamp)."""
    import nodes
    from harness.tiny_models import CELL_VAE_SCALE

    vae = nodes.VAELoader().load_vae("tiny-cell-vae.safetensors")[0]
    image = torch.rand(2, 32, 48, 3, generator=torch.Generator().manual_seed(0))
    latent = nodes.VAEEncode().encode(vae, image)[0]["samples"]
    cells = torch.nn.functional.avg_pool2d(image.movedim(-1, 1), 8)
    expected = torch.cat([cells, cells.mean(1, keepdim=True)], 1).sub(0.5).div(CELL_VAE_SCALE)
    assert latent.shape == (2, 4, 4, 6)
    torch.testing.assert_close(latent, expected, atol=0.02, rtol=0.0)  # fp16 weights
    decoded = nodes.VAEDecode().decode(vae, {"samples": latent})[0]
    upsampled = torch.nn.functional.interpolate(cells, scale_factor=8, mode="nearest").movedim(1, -1)
    assert (decoded - upsampled).abs().max() < 0.005


@pytest.mark.slow
def test_stock_graph_runs_in_process_and_is_deterministic(
    run_graph: RunGraph, tiny_models: Models, comfy: ComfyDirs
) -> None:
    first = run_graph(stock_graph(1), outputs=["5", "6"])
    other = run_graph(stock_graph(2), outputs=["5"])
    again = run_graph(stock_graph(1), outputs=["5"])
    image = first["6"][0]
    assert image.shape == (1, 64, 64, 3) and torch.isfinite(image).all()
    latent = first["5"][0]["samples"]
    assert latent.shape == (1, 4, 8, 8) and torch.isfinite(latent).all()
    assert again["5"][0]["samples"] is not latent, "the sampler must have run again, not come from the cache"
    assert torch.equal(again["5"][0]["samples"], latent)
    assert not torch.equal(other["5"][0]["samples"], latent)
    assert list((comfy.base_dir / "output").glob("harness_*.png"))


def test_invalid_and_failing_prompts_raise_readable_errors(run_graph: RunGraph, tiny_models: Models) -> None:
    from harness.executor import PromptFailed

    graph = stock_graph(1)
    graph["4"]["inputs"]["width"] = 3
    with pytest.raises(PromptFailed, match=r"node 4 \(EmptyLatentImage\):\n  - Value 3 smaller than min"):
        run_graph(graph)
    graph = stock_graph(1)
    graph["8"] = {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}
    graph["6"]["inputs"]["samples"] = ["8", 0]
    with pytest.raises(PromptFailed, match=r"node 6 \(VAEDecode\) raised RuntimeError: .*16 channels") as failed:
        run_graph(graph)
    assert failed.value.node_id == "6"


def test_the_stock_graph_runs_on_the_server(comfy_server: ComfyServer) -> None:
    entry = comfy_server.wait(comfy_server.queue(stock_graph(1, prefix="server")))
    images = comfy_server.output_images(entry)
    assert len(images) == 1 and images[0].suffix == ".png"
    with Image.open(images[0]) as png:
        assert png.size == (64, 64)


def ui_workflow() -> dict[str, Any]:
    """A frontend-saved workflow: KSampler seed from a PrimitiveNode, VAE through a Reroute, a bypassed
    LatentUpscaleBy before VAEDecode, a muted PreviewImage and a Note."""
    return {
        "nodes": [
            {"id": 1, "type": "CheckpointLoaderSimple", "mode": 0, "inputs": [], "widgets_values": [SD15]},
            {
                "id": 2,
                "type": "CLIPTextEncode",
                "mode": 0,
                "inputs": [{"name": "clip", "type": "CLIP", "link": 2}],
                "widgets_values": ["a photo of a cat"],
            },
            {
                "id": 3,
                "type": "CLIPTextEncode",
                "mode": 0,
                "inputs": [{"name": "clip", "type": "CLIP", "link": 3}],
                "widgets_values": ["blurry"],
            },
            {"id": 4, "type": "EmptyLatentImage", "mode": 0, "inputs": [], "widgets_values": [64, 64, 1]},
            {
                "id": 5,
                "type": "KSampler",
                "mode": 0,
                "inputs": [
                    {"name": "model", "type": "MODEL", "link": 1},
                    {"name": "positive", "type": "CONDITIONING", "link": 4},
                    {"name": "negative", "type": "CONDITIONING", "link": 5},
                    {"name": "latent_image", "type": "LATENT", "link": 6},
                    {"name": "seed", "type": "INT", "widget": {"name": "seed"}, "link": 10},
                ],
                "widgets_values": [99, "randomize", 3, 7.0, "euler", "normal", 1.0],
            },
            {
                "id": 12,
                "type": "LatentUpscaleBy",
                "mode": 4,
                "inputs": [
                    {"name": "samples", "type": "LATENT", "link": 11},
                    {"name": "upscale_method", "type": "COMBO", "widget": {"name": "upscale_method"}, "link": None},
                ],
                "outputs": [{"name": "LATENT", "type": "LATENT", "links": [7]}],
                "widgets_values": ["nearest-exact", 1.5],
            },
            {
                "id": 6,
                "type": "VAEDecode",
                "mode": 0,
                "inputs": [{"name": "samples", "type": "LATENT", "link": 7}, {"name": "vae", "type": "VAE", "link": 9}],
                "widgets_values": [],
            },
            {"id": 9, "type": "Reroute", "mode": 0, "inputs": [{"name": "", "type": "*", "link": 8}]},
            {
                "id": 7,
                "type": "SaveImage",
                "title": "Save the cat",
                "mode": 0,
                "inputs": [{"name": "images", "type": "IMAGE", "link": 12}],
                "widgets_values": ["ui"],
            },
            {
                "id": 14,
                "type": "PreviewImage",
                "mode": 2,
                "inputs": [{"name": "images", "type": "IMAGE", "link": 13}],
                "widgets_values": [],
            },
            {
                "id": 11,
                "type": "PrimitiveNode",
                "mode": 0,
                "outputs": [{"name": "INT", "type": "INT", "links": [10], "widget": {"name": "seed"}}],
                "widgets_values": [1234, "fixed"],
            },
            {"id": 13, "type": "Note", "mode": 0, "widgets_values": ["seed pinned by the primitive"]},
        ],
        "links": [
            [1, 1, 0, 5, 0, "MODEL"],
            [2, 1, 1, 2, 0, "CLIP"],
            [3, 1, 1, 3, 0, "CLIP"],
            [4, 2, 0, 5, 1, "CONDITIONING"],
            [5, 3, 0, 5, 2, "CONDITIONING"],
            [6, 4, 0, 5, 3, "LATENT"],
            [7, 12, 0, 6, 0, "LATENT"],
            [8, 1, 2, 9, 0, "*"],
            [9, 9, 0, 6, 1, "VAE"],
            [10, 11, 0, 5, 4, "INT"],
            [11, 5, 0, 12, 0, "LATENT"],
            [12, 6, 0, 7, 0, "IMAGE"],
            [13, 6, 0, 14, 0, "IMAGE"],
        ],
        "version": 0.4,
    }


def test_ui_workflow_converts_to_the_api_prompt_and_runs(run_graph: RunGraph, tiny_models: Models) -> None:
    from harness.workflow_format import object_info_inprocess, ui_to_api

    prompt = ui_to_api(ui_workflow(), object_info_inprocess())
    expected = stock_graph(1234, prefix="ui")
    expected["7"]["_meta"] = {"title": "Save the cat"}
    assert prompt == expected
    assert run_graph(prompt, outputs=["6"])["6"][0].shape == (1, 64, 64, 3)


def test_object_info_serves_stock_and_pack_nodes_like_the_in_process_comfyui(
    comfy: ComfyDirs, comfy_server: ComfyServer
) -> None:
    from harness.node_docs import pack_node_classes
    from harness.workflow_format import object_info_inprocess

    served = comfy_server.object_info()
    local = object_info_inprocess()
    assert served["KSampler"] == local["KSampler"]
    assert served["KSampler"]["input_order"]["required"][:2] == ["model", "seed"]
    ids = [cls.GET_SCHEMA().node_id for cls in pack_node_classes()]
    assert ids and all(node_id.startswith("PreciseEdit_") for node_id in ids)
    for node_id in ids:
        assert node_id in served, f"{node_id} is registered in process but not served"
        strip = {"python_module"}
        assert {k: v for k, v in served[node_id].items() if k not in strip} == {
            k: v for k, v in local[node_id].items() if k not in strip
        }


def sleep_workflow(reports: int, step_seconds: float, silent_seconds: float) -> dict[str, Any]:
    """A UI workflow of one ``HarnessTest_Sleep`` node titled "Sleep here" (tests/harness_test_nodes)."""
    node = {"id": 1, "type": "HarnessTest_Sleep", "title": "Sleep here", "mode": 0, "inputs": []}
    node["widgets_values"] = [reports, step_seconds, silent_seconds]
    return {"nodes": [node], "links": [], "version": 0.4}


def run_sleep_workflow(server: ComfyServer, tmp_path: Path, workflow: dict[str, Any], stall_timeout: float):
    from harness.run_workflows import run_workflow

    path = tmp_path / "sleep.json"
    path.write_text(json.dumps(workflow))
    return run_workflow(server, path, server.object_info(), tmp_path / "out", stall_timeout=stall_timeout)


def wait_until_idle(server: ComfyServer, timeout: float = 60.0) -> None:
    """Return once the server runs and holds no prompt (a silent node ignores the cancel until it returns)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queue = requests.get(f"{server.url}/queue", timeout=60).json()
        if not queue["queue_running"] and not queue["queue_pending"]:
            return
        time.sleep(0.1)
    raise TimeoutError(f"the server was still busy after {timeout:.0f} s")


def test_progress_tracker_times_silence_from_the_last_report_and_keeps_each_prompts_running_node() -> None:
    from harness.server_progress import ProgressTracker, RunningNode

    now = [100.0]
    tracker = ProgressTracker(clock=lambda: now[0])
    now[0] = 103.0
    assert tracker.silent_for() == 3.0
    tracker.record({"type": "executing", "data": {"node": "5", "display_node": "5", "prompt_id": "a"}})
    now[0] = 110.0
    tracker.record({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 1}}}})
    assert tracker.silent_for() == 7.0, "a queue status names no prompt and is no progress"
    assert tracker.running("a") == RunningNode("5")
    tracker.record({"type": "progress", "data": {"value": 3, "max": 4, "prompt_id": "a", "node": "5"}})
    assert tracker.silent_for() == 0.0
    assert tracker.running("a") == RunningNode("5", 3, 4)
    assert tracker.running("a").progress() == "its last progress was 3/4"
    tracker.record({"type": "progress_state", "data": {"prompt_id": "b", "nodes": {}}})
    tracker.record({"type": "executing", "data": {"node": "7", "prompt_id": "a"}})
    assert tracker.running("a").progress() == "it reported no progress"
    tracker.record({"type": "progress", "data": {"value": 1, "max": 2, "prompt_id": "a", "node": "8"}})
    assert tracker.running("a") == RunningNode("8", 1, 2), "a sub-node's progress names the sub-node"
    tracker.record({"type": "execution_success", "data": {"prompt_id": "a"}})
    assert tracker.running("a") is None and tracker.running("b") is None


def test_a_workflow_that_keeps_reporting_progress_runs_past_a_short_stall_limit(
    comfy_server: ComfyServer, tmp_path: Path
) -> None:
    """16 progress reports 0.25 s apart: 4 s in all, four times the stall limit, and never 1 s without a report."""
    result = run_sleep_workflow(comfy_server, tmp_path, sleep_workflow(16, 0.25, 0.0), stall_timeout=1.0)
    assert result.ok, result.error
    assert result.seconds >= 4.0


def test_a_workflow_that_goes_silent_fails_naming_the_running_node_and_its_last_progress(
    comfy_server: ComfyServer, tmp_path: Path
) -> None:
    result = run_sleep_workflow(comfy_server, tmp_path, sleep_workflow(2, 0.05, 4.0), stall_timeout=1.0)
    assert not result.ok
    assert re.fullmatch(
        r"PromptStalled: prompt \S+: the server reported no progress for \d+ s while node 1 "
        r'\(HarnessTest_Sleep, "Sleep here"\) was running, and its last progress was 2/2; cancelled it '
        r"\(raise the stall limit if this node is only slow\)",
        result.error,
    ), result.error
    assert result.seconds < 4.0, "the wait ended at the stall limit, before the node finished"
    wait_until_idle(comfy_server)


def test_a_stalled_untitled_node_is_named_by_its_display_name(comfy_server: ComfyServer) -> None:
    from harness.errors import PromptStalled

    inputs = {"reports": 0, "step_seconds": 0.0, "silent_seconds": 3.0}
    with pytest.raises(PromptStalled) as stalled:
        comfy_server.wait(comfy_server.queue({"1": {"class_type": "HarnessTest_Sleep", "inputs": inputs}}), 1.0)
    wait_until_idle(comfy_server)
    assert 'node 1 (HarnessTest_Sleep, "Sleep (harness tests)") was running, and it reported no progress' in str(
        stalled.value
    )
    assert stalled.value.node_id == "1"
