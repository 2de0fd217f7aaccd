"""The lab's MCDM: paired portraits that change one attribute and nothing else, a pairs folder the pack reads, the
pack's training step driven with v-prediction's update, a model the pack's MCDM nodes take, and a cache key that
covers the part-1 models it starts from without touching theirs."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
import torch

from harness.comfy_env import ComfyDirs
from lab import portrait_pairs

pytestmark = pytest.mark.lab


def test_pairs_change_one_attribute_and_keep_identity_layout_and_background() -> None:
    pairs = [portrait_pairs.random_pair(seed, held_out=False) for seed in range(60)]
    for item in pairs:
        changed = [f.name for f in fields(item.face) if getattr(item.face, f.name) != getattr(item.edited, f.name)]
        assert changed == [item.attribute] and item.attribute in portrait_pairs.EDITS
        assert (item.face.face_shape, item.face.skin) not in portrait_pairs.HELD_OUT_IDENTITIES
        differ = np.abs(item.source - item.target).max(-1) > 0
        assert item.region.any() and not (item.region & ~differ).any()
        assert np.abs(item.source - item.target)[~item.region].max() <= portrait_pairs.CHANGE
        assert item.prompt == item.edited.caption and item.source_prompt == item.face.caption
    assert {item.attribute for item in pairs} == set(portrait_pairs.EDITS)
    held_out = portrait_pairs.held_out_pairs(2, 8000)
    assert [item.attribute for item in held_out] == list(portrait_pairs.EDITS) * 2
    assert all((item.face.face_shape, item.face.skin) in portrait_pairs.HELD_OUT_IDENTITIES for item in held_out)


def test_pairs_folder_is_read_back_by_the_pack(comfy: ComfyDirs, tmp_path) -> None:
    from precise_edit.core.mcdm.pairs_folder import load_pairs

    pairs = portrait_pairs.training_pairs(5, 3)
    data = load_pairs(portrait_pairs.write_pairs_folder(tmp_path / "pairs", pairs))
    assert data.prompts == [item.prompt for item in pairs]
    assert data.source_prompts == [item.source_prompt for item in pairs]
    expected = np.stack([item.target for item in pairs])
    np.testing.assert_allclose(data.targets.numpy(), expected, atol=0.5 / 255 + 1e-6)


def test_velocity_weighted_denoiser_gives_the_v_loss_gradient() -> None:
    """Through ``velocity_weighted`` the pack's ε-MSE has the gradient of the v-MSE for a network that returns
    ε̂ = √ᾱ v̂ + √(1−ᾱ) z_t (as the lab UNet does)."""
    from lab.train_mcdm import velocity_weighted

    alphas = torch.linspace(0.99, 0.01, 1000)
    weight = torch.nn.Parameter(torch.tensor(0.3))
    timesteps = torch.tensor([5, 500, 990])
    a = alphas[timesteps].view(-1, 1, 1, 1)
    x0, noise = torch.randn(3, 4, 2, 2), torch.randn(3, 4, 2, 2)
    z_t = a.sqrt() * x0 + (1 - a).sqrt() * noise

    def network(x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return a.sqrt() * weight * x[:, :4] + (1 - a).sqrt() * x[:, :4]

    eps = velocity_weighted(network, alphas)(torch.cat([z_t, z_t], 1), timesteps, torch.zeros(3, 1, 1))
    (eps_grad,) = torch.autograd.grad(torch.nn.functional.mse_loss(eps, noise), weight)
    v = a.sqrt() * noise - (1 - a).sqrt() * x0
    (v_grad,) = torch.autograd.grad(torch.nn.functional.mse_loss(weight * z_t, v), weight)
    torch.testing.assert_close(eps_grad, v_grad)


def test_mcdm_key_covers_the_part1_models_and_leaves_their_keys_alone() -> None:
    from lab import cache, train_mcdm

    own = {"portrait_pairs.py", "models/mcdm.py", "train_mcdm.py"}
    assert not own & set(cache.SOURCE_FILES)
    assert set(cache.SOURCE_FILES) | own <= set(train_mcdm.SOURCE_FILES)
    assert all((cache.LAB_DIR / path).is_file() for path in train_mcdm.SOURCE_FILES)


def _untrained_mcdm_state() -> dict[str, torch.Tensor]:
    from lab.models import mcdm as mcdm_model
    from lab.train_mcdm import ADAPTER_PREFIX, UNET_PREFIX
    from precise_edit.core.mcdm.adapter import MCDMAdapter

    torch.manual_seed(0)
    unet = mcdm_model.build_unet(trainable=True).diffusion_model.state_dict()
    state = {UNET_PREFIX + k: v for k, v in unet.items() if not k.startswith("lab_")}
    return state | {ADAPTER_PREFIX + k: v for k, v in MCDMAdapter(mcdm_model.adapter_config()).state_dict().items()}


def test_mcdm_graph_runs_on_the_lab_model(lab_comfy: ComfyDirs, monkeypatch) -> None:
    """The claim's graph (the pack's MCDM Edit Mask and MCDM Guider, plain and masked, behind the lab's MCDM
    loader) runs on the lab's model, here untrained; the DiffEdit mask of the part-1 model has the image's size."""
    from lab import train, train_mcdm
    from lab.claims import mcdm_portrait_edit
    from lab.models import text_encoder, unet
    from lab.runtime import run, save_input_image
    from precise_edit.nodes.mcdm.conditioning import check_mcdm_model

    monkeypatch.setattr(train_mcdm, "mcdm_state", lambda clip=None: _untrained_mcdm_state())
    check_mcdm_model(train_mcdm.load_mcdm().model)
    item = portrait_pairs.held_out_pairs(1, 8000)[0]
    name = save_input_image(item.source, mcdm_portrait_edit.input_name(item.seed))
    graph, nodes = mcdm_portrait_edit.edit_graph(item, item.seed, name, steps=2)
    out = run(graph.nodes, list(dict.fromkeys(nodes.values())))
    for route in mcdm_portrait_edit.ROUTES:
        assert out[nodes[route]][0].shape == (1, 128, 128, 3), route
    mask = out[nodes["mask"]][0]
    assert mask.shape == (1, 128, 128) and set(mask.unique().tolist()) <= {0.0, 1.0}
    clip = text_encoder.build_clip(train.text_encoder_state())
    network = unet.build_model(unet.build_model(trainable=True).diffusion_model.state_dict()).diffusion_model
    diffedit = mcdm_portrait_edit.diffedit_mask_part1(item, network, train.CaptionEncoder(clip), item.seed)
    assert diffedit.shape == (128, 128) and diffedit.dtype == bool


def test_training_runs_inside_inference_mode(comfy: ComfyDirs) -> None:
    """The lab loader may train on a fresh cache inside ComfyUI's executor (inference mode)."""
    from lab import train, train_mcdm
    from lab.models import text_encoder, unet

    clip = text_encoder.build_clip(train.text_encoder_state())
    torch.manual_seed(0)
    base = {k: v for k, v in unet.build_model(trainable=True).diffusion_model.state_dict().items() if "lab_" not in k}
    config = {**train_mcdm.TRAINING, "steps": 3, "warmup": 1, "pairs": 4, "batch": 2}
    with torch.inference_mode():
        state = train_mcdm.train_mcdm(config, clip, base)
    assert state["unet.input_blocks.0.0.weight"].shape[1] == 8
    assert not torch.equal(
        state["unet.input_blocks.0.0.weight"][:, 4:], torch.zeros_like(base["input_blocks.0.0.weight"])
    )
