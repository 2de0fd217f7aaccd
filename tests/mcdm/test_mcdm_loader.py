"""MCDM Loader: the release's layouts (diffusers unet/ folder, unet.pth + adapter.pth) give diffusers' noise
predictions through ComfyUI; our format round-trips; missing or wrong parts get errors that say what is wrong."""

from __future__ import annotations

import shutil

import pytest
import torch
from mcdm_helpers import random_adapter, save_tiny_vit_b32, tiny_diffusers_unet, write_release


@pytest.fixture(scope="module")
def mcdm_dir(comfy):
    import folder_paths

    from precise_edit.nodes.mcdm.nodes_train import MCDM_FOLDER

    path = comfy.models_dir / MCDM_FOLDER
    path.mkdir(parents=True, exist_ok=True)
    folder_paths.add_model_folder_path(MCDM_FOLDER, str(path), is_default=True)
    return path


@pytest.fixture(scope="module")
def release(mcdm_dir):
    unet, adapter = tiny_diffusers_unet(seed=0), random_adapter(seed=1)
    write_release(mcdm_dir / "release-diffusers", unet, adapter, "diffusers")
    write_release(mcdm_dir / "release-pth", unet, adapter, "pth")
    return unet, adapter


@pytest.fixture(scope="module")
def joint_clip(tmp_path_factory):
    from precise_edit.core.deltaedit.joint_clip import load_joint_clip
    from precise_edit.nodes.deltaedit.joint_clip_model import JointClipModel, tokenizer_folder

    path = save_tiny_vit_b32(tmp_path_factory.mktemp("vit-b32"))
    return JointClipModel(load_joint_clip(path, tokenizer_folder(), "tiny-vit-b32"))


def load(name, **inputs):
    from precise_edit.nodes.mcdm.nodes_train import MCDMLoader

    return MCDMLoader.execute(name, **inputs).result[0]


def inputs(seed=3, size=8):
    generator = torch.Generator().manual_seed(seed)
    sample = torch.randn(2, 8, size, size, generator=generator)
    context = torch.randn(2, 127, 768, generator=generator)
    return sample, torch.tensor([981.0, 37.0]), context


def diffusers_eps(unet, sample, timesteps, context):
    with torch.no_grad():
        items = zip(sample, timesteps, context, strict=True)
        return torch.cat([unet(s[None], t, encoder_hidden_states=c[None]).sample for s, t, c in items])


def comfy_eps(mcdm, sample, timesteps, context):
    with torch.no_grad():
        return mcdm.unet_module()(sample, timesteps, context=context)


@pytest.mark.parametrize("name", ["release-diffusers/", "release-pth/"])
def test_the_release_layouts_predict_the_noise_diffusers_predicts(release, name):
    from precise_edit.nodes.mcdm.nodes_train import list_mcdm_entries

    assert name in list_mcdm_entries()
    unet, adapter = release
    mcdm = load(name)
    sample, timesteps, context = inputs()
    expected = diffusers_eps(unet, sample, timesteps, context)
    error = (comfy_eps(mcdm, sample, timesteps, context) - expected).abs().max().item()
    print(f"{name}: max |ε_comfy − ε_diffusers| = {error:.2e} (|ε| max {expected.abs().max().item():.2f})")
    assert error < 1e-4
    for key, value in adapter.state_dict().items():
        assert torch.equal(mcdm.adapter.state_dict()[key], value)


def test_a_bare_released_unet_pth_is_detected_as_sd15_with_eight_channels():
    """The release ships unet.pth without a config: ComfyUI's SD1.5 detection on shapes (meta tensors here)."""
    import comfy.utils
    from diffusers import UNet2DConditionModel

    from precise_edit.nodes.mcdm.nodes_train import comfy_unet_state_dict, detected_unet_config

    with torch.device("meta"):
        sd15 = UNet2DConditionModel(in_channels=8, cross_attention_dim=768, attention_head_dim=8)
    state_dict = sd15.state_dict()
    config = detected_unet_config(state_dict, "unet.pth")
    assert config["in_channels"] == 8 and config["context_dim"] == 768 and config["channel_mult"] == [1, 2, 4, 4]
    assert config["num_heads"] == 8 and config["transformer_depth"] == [1, 1, 1, 1, 1, 1, 0, 0]
    converted = comfy_unet_state_dict(state_dict, config, "unet.pth")
    assert len(converted) == len(state_dict) and set(converted) <= set(comfy.utils.unet_to_diffusers(config).values())


def test_the_model_feeds_the_scaled_source_latent_to_the_extra_channels(release):
    """Through ComfyUI's model: x₀ = x − σ ε with ε = diffusers' UNet on [x/√(σ²+1) ; 0.18215 z_A]."""
    unet, _ = release
    mcdm = load("release-diffusers/")
    model = mcdm.model.model
    generator = torch.Generator().manual_seed(5)
    x, latent = torch.randn(1, 4, 8, 8, generator=generator), torch.randn(1, 4, 8, 8, generator=generator)
    context = torch.randn(1, 127, 768, generator=generator)
    conds = model.extra_conds(concat_latent_image=latent, noise=x, device="cpu", cross_attn=context)
    concat = conds["c_concat"].cond
    torch.testing.assert_close(concat, latent * 0.18215)
    sigma = torch.tensor([2.5])
    with torch.no_grad():
        denoised = model.apply_model(x, sigma, c_concat=concat, c_crossattn=context)
    timestep = model.model_sampling.timestep(sigma)
    scaled = x / (sigma**2 + 1) ** 0.5
    eps = diffusers_eps(unet, torch.cat([scaled, concat], 1), timestep, context)
    error = (denoised - (x - sigma * eps)).abs().max().item()
    print(f"x0 through ComfyUI's model vs diffusers: max error {error:.2e}")
    assert error < 1e-4


def test_our_format_round_trips_through_the_loader(release, mcdm_dir, joint_clip):
    from precise_edit.nodes.mcdm.model_file import save_mcdm

    mcdm = load("release-pth/", joint_clip=joint_clip)
    assert mcdm.vision is not None
    save_mcdm(mcdm, mcdm_dir / "ours.safetensors")
    again = load("ours.safetensors")
    sample, timesteps, context = inputs(seed=7)
    assert torch.equal(comfy_eps(again, sample, timesteps, context), comfy_eps(mcdm, sample, timesteps, context))
    tokens, latent = torch.randn(1, 50, 768), torch.randn(1, 4, 64, 64)
    assert torch.equal(again.image_tokens(tokens, latent), mcdm.image_tokens(tokens, latent))


def test_a_missing_adapter_or_unet_is_named(release, mcdm_dir):
    broken = mcdm_dir / "no-adapter"
    shutil.copytree(mcdm_dir / "release-diffusers", broken, dirs_exist_ok=True)
    (broken / "adapter.pth").unlink()
    with pytest.raises(FileNotFoundError, match=r"no adapter .*adapter\.safetensors or adapter\.pth"):
        load("no-adapter/")
    only_adapter = mcdm_dir / "no-unet"
    only_adapter.mkdir(exist_ok=True)
    shutil.copy(mcdm_dir / "release-pth" / "adapter.pth", only_adapter / "adapter.pth")
    with pytest.raises(FileNotFoundError, match=r"no UNet .*unet\.pth"):
        load("no-unet/")


def test_a_four_channel_unet_is_refused(mcdm_dir):
    write_release(mcdm_dir / "four-channel", tiny_diffusers_unet(in_channels=4), random_adapter(), "diffusers")
    with pytest.raises(ValueError, match="4 input channels; an MCDM UNet takes 8"):
        load("four-channel/")


def test_pickled_objects_are_never_unpickled(mcdm_dir, release):
    folder = mcdm_dir / "pickled"
    shutil.copytree(mcdm_dir / "release-pth", folder, dirs_exist_ok=True)
    torch.save({"adapter": torch.nn.Linear(2, 2)}, folder / "adapter.pth")
    with pytest.raises(ValueError, match="only weights_only checkpoints are read"):
        load("pickled/")


def test_a_vision_tower_of_the_wrong_shape_is_refused(release, tiny_models):
    from precise_edit.core.deltaedit.joint_clip import load_joint_clip
    from precise_edit.nodes.deltaedit.joint_clip_model import JointClipModel, tokenizer_folder

    small = JointClipModel(load_joint_clip(tiny_models["tiny-joint-clip.safetensors"], tokenizer_folder()))
    with pytest.raises(ValueError, match=r"joint_clip: its vision hidden states are \(17, 64\).*\(50, 768\)"):
        load("release-pth/", joint_clip=small)


def test_a_file_that_is_not_an_mcdm_is_refused(tiny_models):
    from precise_edit.nodes.mcdm.nodes_train import load_entry

    with pytest.raises(ValueError, match="sd15: not an MCDM"):
        load_entry(tiny_models["tiny-sd15.safetensors"], "sd15")


def test_the_harness_stand_in_mcdm_loads_with_the_stand_in_vit_b32(tiny_models):
    """The workflow's tiny MCDM (our format, built by harness/tiny_models.py) and tiny ViT-B/32 fit each other."""
    from precise_edit.core.deltaedit.joint_clip import load_joint_clip
    from precise_edit.nodes.deltaedit.joint_clip_model import JointClipModel, tokenizer_folder
    from precise_edit.nodes.mcdm.nodes_train import checked_vision, load_entry

    mcdm = load_entry(tiny_models["mcdm-outfit.safetensors"], "mcdm-outfit.safetensors")
    vit = load_joint_clip(tiny_models["clip-vit-base-patch32.safetensors"], tokenizer_folder())
    vision = checked_vision(JointClipModel(vit), mcdm, "joint_clip")
    assert mcdm.unet_config["in_channels"] == 8 and vision.hidden_states(torch.rand(1, 40, 48, 3)).shape == (1, 50, 768)
