"""The lab's instruction edits and instruction model: deterministic edits that change exactly their true region, an
8-channel UNet that the pack's ZONE nodes accept as InstructPix2Pix, served as ε from its v prediction, and a cache
key of its own that leaves the part-1 models' keys alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harness.comfy_env import ComfyDirs
from lab import instruction_world

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("action", instruction_world.ACTIONS)
def test_edits_are_deterministic_and_change_only_their_region(action: str) -> None:
    for seed in range(40):
        sample = instruction_world.edit(seed, action)
        again = instruction_world.edit(seed, action)
        assert sample.instruction == again.instruction
        np.testing.assert_array_equal(sample.target, again.target)
        changed = np.any(sample.source != sample.target, axis=-1)
        assert changed.any() and not (changed & ~sample.region).any(), (seed, sample.instruction)
        assert sample.region.sum() > 150
        obj = sample.edited
        if action == "change":
            assert sample.instruction == f"make the {obj.colour} {obj.shape} {sample.new_colour}"
            assert sample.new_colour in sample.target_masks and obj.colour not in sample.target_masks
        elif action == "add":
            assert sample.instruction.startswith(f"add a {obj.size} {obj.colour}")
            assert obj.colour in sample.target_masks and obj.colour not in sample.source_masks
        else:
            assert sample.instruction == f"remove the {obj.colour} {obj.shape}"
            assert obj.colour in sample.source_masks and obj.colour not in sample.target_masks


def test_actions_are_drawn_evenly() -> None:
    actions = [instruction_world.edit(seed).action for seed in range(300)]
    assert all(80 < actions.count(action) < 120 for action in instruction_world.ACTIONS)


def test_instruction_unet_is_an_instruct_pix2pix_model_served_as_epsilon(comfy: ComfyDirs) -> None:
    """The pack's IP2P check passes, and ComfyUI's prediction with a concat image is ε = α v + σ z_t from the
    network's v on [z_t, scaled image latent]."""
    from lab.models import instruction_unet
    from precise_edit.nodes.zone.ip2p_model import require_instruct_pix2pix

    torch.manual_seed(0)
    trained = instruction_unet.build_model(trainable=True).diffusion_model.state_dict()
    patcher = instruction_unet.model_patcher({k: v for k, v in trained.items() if not k.startswith("lab_")})
    require_instruct_pix2pix(patcher)
    model = patcher.model
    noise, image = torch.randn(2, 4, 16, 16), torch.randn(2, 4, 16, 16)
    context = torch.randn(2, 77, 64)
    sigma = torch.tensor([3.0, 0.5])
    concat = model.extra_conds(concat_latent_image=image, noise=noise, device="cpu")["c_concat"].cond
    torch.testing.assert_close(concat, image * 0.18215)
    denoised = model.apply_model(noise, sigma, c_concat=concat, c_crossattn=context)
    x_t = noise / (1 + sigma.view(-1, 1, 1, 1) ** 2).sqrt()
    t = model.model_sampling.timestep(sigma).float()
    v = model.diffusion_model.velocity(torch.cat([x_t, concat], 1), t, context)
    alpha, s = instruction_unet.alpha_sigma(t, model.diffusion_model.lab_log_sigmas)
    epsilon = alpha * v + s * x_t
    torch.testing.assert_close(denoised, noise - sigma.view(-1, 1, 1, 1) * epsilon, atol=1e-4, rtol=1e-4)


def test_instruction_model_key_is_its_own() -> None:
    """Editing the instruction model's files never retrains the part-1 models, and its key hashes its own files."""
    from lab import cache, train_instruction

    assert not {"instruction_world.py", "models/instruction_unet.py", "train_instruction.py"} & set(cache.SOURCE_FILES)
    assert {"instruction_world.py", "models/instruction_unet.py", "train_instruction.py"} <= set(
        train_instruction.SOURCE_FILES
    )
    config = {"seed": 1}
    assert cache.model_key("unet", config) == cache.model_key("unet", config, cache.SOURCE_FILES)
    assert cache.model_key("x", config, train_instruction.SOURCE_FILES) != cache.model_key("x", config)


def test_zone_graph_runs_unchanged_on_the_instruction_model(lab_comfy: ComfyDirs, monkeypatch) -> None:
    """The claim's graph (the pack's Instruction Locator, Fused Instruct Guider, Edit Region From Attention,
    Region-IoU Select and FFT Edge Smoother behind the lab's instruction loader) runs on the 8-channel model, here
    with untrained weights, and the composite equals the source outside its final mask."""
    import folder_paths

    from lab import train_instruction
    from lab.claims import zone_local_edit
    from lab.models import instruction_unet
    from lab.runtime import run

    torch.manual_seed(0)
    weights = instruction_unet.build_model(trainable=True).diffusion_model.state_dict()
    state = {key: value for key, value in weights.items() if not key.startswith("lab_")}
    monkeypatch.setattr(train_instruction, "instruction_unet_state", lambda clip=None: state)
    sample = instruction_world.edit(3, "remove")
    names = zone_local_edit.write_inputs(sample, Path(folder_paths.get_input_directory()), "lab_zone_test")
    graph, nodes = zone_local_edit.edit_graph(sample.instruction, 3, *names)
    out = run(graph.nodes, list(dict.fromkeys(nodes.values())))
    source = out[nodes["source"]][0]
    assert out[nodes["edited"]][0].shape == source.shape == (1, 128, 128, 3)
    assert out[nodes["rough"]][0].shape == (1, 128, 128)
    for route in zone_local_edit.ROUTES:
        final, composite = out[nodes[f"{route} composite"]]
        outside = final[0] < 0.5
        assert torch.equal(composite[0][outside], source[0][outside]), route


def test_training_runs_inside_inference_mode(comfy: ComfyDirs) -> None:
    """A ComfyUI executor runs nodes under inference mode; the loader trains there on a fresh cache."""
    from lab import train, train_instruction
    from lab.models import text_encoder

    clip = text_encoder.build_clip(train.text_encoder_state())
    config = {**train_instruction.TRAINING, "steps": 3, "warmup": 1, "dataset": 4, "batch": 2}
    with torch.inference_mode():
        state = train_instruction.train_instruction_unet(config, clip)
    assert state["input_blocks.0.0.weight"].shape[1] == 8
