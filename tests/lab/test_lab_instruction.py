"""The lab's instruction edits and instruction models: deterministic edits that change exactly their true region (one
at a time or three in a chain), an 8-channel UNet that the pack's ZONE nodes accept as InstructPix2Pix, served as ε
from its v prediction and starting as the part-1 text-to-image UNet, MagicBrush's stand-in fine-tuned from it on
another mix of edits, cache keys of their own that leave the part-1 models' keys alone, and the action classifier
claim's held-out instructions."""

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


@pytest.mark.parametrize("seed", range(30))
def test_a_chain_edits_in_turns_each_changing_only_its_region(seed: int) -> None:
    turns = instruction_world.chain(seed)
    assert [turn.action for turn in turns] == list(instruction_world.CHAIN)
    for index, turn in enumerate(turns):
        changed = np.any(turn.source != turn.target, axis=-1)
        assert changed.any() and not (changed & ~turn.region).any(), (seed, turn.instruction)
        if index:
            np.testing.assert_array_equal(turn.source, turns[index - 1].target)
    changed_object, removed_object = turns[0].edited, turns[2].edited
    assert removed_object.colour != turns[0].new_colour and removed_object.position != changed_object.position


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


def test_instruction_unet_starts_as_the_text_to_image_unet(comfy: ComfyDirs) -> None:
    """InstructPix2Pix's initialisation: the part-1 weights, the source image's extra input channels weighted zero,
    so that before fine-tuning the image condition changes nothing and the prediction is the part-1 UNet's."""
    from lab import train_instruction
    from lab.models import instruction_unet, unet

    torch.manual_seed(0)
    text_to_image = unet.build_model(trainable=True).diffusion_model
    widened = train_instruction.widened(text_to_image.state_dict())
    assert widened[train_instruction.FIRST_CONV].shape[1] == 8
    assert not widened[train_instruction.FIRST_CONV][:, 4:].any()
    network = instruction_unet.build_model(trainable=True).diffusion_model
    network.load_state_dict(widened)
    x, image = torch.randn(2, 4, 16, 16), torch.randn(2, 4, 16, 16)
    t, context = torch.tensor([900.0, 100.0]), torch.randn(2, 77, 64)
    with torch.no_grad():
        expected = text_to_image.velocity(x, t, context)
        torch.testing.assert_close(network.velocity(torch.cat([x, image], 1), t, context), expected)


def test_magicbrush_mix_differs_and_the_first_model_draws_from_each_seed() -> None:
    from lab import train_instruction

    assert set(train_instruction.edit_actions(train_instruction.TRAINING, 50)) == {None}
    actions = train_instruction.edit_actions(train_instruction.MAGICBRUSH, 2000)
    shares = train_instruction.MAGICBRUSH["action_shares"]
    for action in instruction_world.ACTIONS:
        assert abs(actions.count(action) / len(actions) - shares[action] / sum(shares.values())) < 0.04
    assert train_instruction.MAGICBRUSH["seed"] != train_instruction.TRAINING["seed"]


def test_action_classifier_held_out_instructions_were_never_seen() -> None:
    """The claim's held-out instructions name only objects no training instruction names, for every action."""
    from lab.claims import zone_action_classifier as claim

    training = claim.instructions(range(0, 200), held_out=False)
    held_out = claim.instructions(range(100_000, 100_200), held_out=True)
    assert set(held_out.values()) == set(training.values()) == set(instruction_world.ACTIONS)
    assert not set(held_out) & set(training)
    names = {f"{colour} {shape}" for colour, shape in claim.held_out_objects()}
    assert all(any(name in text for name in names) for text in held_out if not text.startswith("add"))
    assert not any(any(f"the {name}" in text for name in names) for text in training)


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
    """The claim's graph (the pack's Instruction Locator, Fused Instruct Guider fusing MagicBrush's stand-in, Edit
    Region From Attention, Region-IoU Select and FFT Edge Smoother behind the lab's loaders) runs on the 8-channel
    models, here with untrained weights, and the composite equals the source outside its final mask."""
    import folder_paths

    from lab import train_instruction
    from lab.claims import zone_local_edit
    from lab.loader_node import MAGICBRUSH_NODE_ID
    from lab.models import instruction_unet
    from lab.runtime import run

    torch.manual_seed(0)
    weights = instruction_unet.build_model(trainable=True).diffusion_model.state_dict()
    state = {key: value for key, value in weights.items() if not key.startswith("lab_")}
    monkeypatch.setattr(train_instruction, "instruction_unet_state", lambda clip=None: state)
    monkeypatch.setattr(train_instruction, "magicbrush_state", lambda clip=None: state)
    sample = instruction_world.edit(3, "remove")
    names = zone_local_edit.write_inputs(sample, Path(folder_paths.get_input_directory()), "lab_zone_test")
    graph, nodes = zone_local_edit.edit_graph(sample.instruction, 3, *names, magicbrush=True, beta=0.2)
    assert any(node["class_type"] == MAGICBRUSH_NODE_ID for node in graph.nodes.values())
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
    from lab.models import text_encoder, unet

    clip = text_encoder.build_clip(train.text_encoder_state())
    config = {**train_instruction.MAGICBRUSH, "steps": 3, "warmup": 1, "dataset": 4, "batch": 2}
    initial = unet.build_model(trainable=True).diffusion_model.state_dict()
    with torch.inference_mode():
        state = train_instruction.train_instruction_unet(config, clip, train_instruction.widened(initial))
    assert state["input_blocks.0.0.weight"].shape[1] == 8
