"""MCDM Trainer in a real ComfyUI (its inference mode): training moves the MCDM and leaves the base model alone,
saved checkpoints reload to identical outputs, an interrupted run resumes to the uninterrupted result, and bad
inputs are refused before anything is written."""

import math
from pathlib import Path

import pytest
import torch
from delta_helpers import one_thread
from mcdm_helpers import save_tiny_vit_b32
from mcdm_synthetic import make_pairs, tiny_base_model, write_pairs_folder

SIZE = 64  # 8×8 latents
LEARN_LR = 2e-3


@pytest.fixture(scope="module")
def world(comfy, sd15, tmp_path_factory):
    """The tiny MCDM base, the SD1.5 stand-in's CLIP, the cell-colour VAE (its latents are the 8×8 cells' colours at
    unit scale, so an edit shows in latents and images) and 16 synthetic pairs in ComfyUI's input directory (the
    trainer reads pairs folders named relative to output or input)."""
    import nodes
    from precise_edit.core.deltaedit.joint_clip import load_joint_clip
    from precise_edit.nodes.deltaedit.joint_clip_model import JointClipModel, tokenizer_folder

    base = tmp_path_factory.mktemp("mcdm_training")
    joint = JointClipModel(load_joint_clip(save_tiny_vit_b32(base / "vit"), tokenizer_folder(), "tiny-vit-b32"))
    folder = write_pairs_folder(comfy.base_dir / "input" / "mcdm_training_pairs", make_pairs(16, SIZE, seed=1))
    vae = nodes.VAELoader().load_vae("tiny-cell-vae.safetensors")[0]
    return {"model": tiny_base_model(), "clip": sd15.clip, "vae": vae, "joint": joint, "folder": folder}


def train(world, steps: int, **options):
    from precise_edit.nodes.mcdm.nodes_train import NULL_GUIDER, MCDMTrainer

    settings = dict(
        pairs_folder=world["folder"].name,
        steps=steps,
        batch_size=4,
        learning_rate=LEARN_LR,
        seed=0,
        checkpoint_every=0,
        filename_prefix="test",
        null_image=NULL_GUIDER,
        mixed_precision="fp32",
        gradient_checkpointing=False,
        resume_from="",
    )
    settings.update(options)
    with one_thread(), torch.inference_mode():
        return MCDMTrainer.execute(
            world["model"], world["clip"], world["vae"], joint_clip=world["joint"], **settings
        ).result


def mcdm_files() -> set[str]:
    import folder_paths

    root = Path(folder_paths.get_folder_paths("mcdm")[0])
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.is_dir() else set()


def unet_weights(mcdm) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in mcdm.unet_state_dict().items()}


def test_training_changes_the_mcdm_and_leaves_the_base_model_alone(world):
    """Two steps move the new conv_in channels off zero and never touch the base model's weights. Whether the
    trained MCDM edits (held-out portraits keep identity and background) is the lab's claim on trained weights
    (lab/claims/mcdm_portrait_edit.py), where the synthetic recolouring test that stood here moved."""
    base_weights = {k: v.clone() for k, v in world["model"].model.diffusion_model.state_dict().items()}
    mcdm, losses = train(world, 2, filename_prefix="moves")
    for key, value in world["model"].model.diffusion_model.state_dict().items():
        assert torch.equal(value, base_weights[key]), f"the base model changed: {key}"
    assert len(losses["loss"]) == 2 and all(math.isfinite(value) for value in losses["loss"])
    assert mcdm.unet_state_dict()["input_blocks.0.0.weight"][:, 4:].abs().sum() > 0


@pytest.mark.slow
def test_checkpoints_reload_identically_and_an_interrupted_run_resumes_to_the_same_model(world, monkeypatch):
    import comfy.model_management
    import comfy.utils

    from precise_edit.nodes.mcdm.model_file import load_mcdm

    straight, _ = train(world, 4, checkpoint_every=2, filename_prefix="straight")
    files = mcdm_files()
    final = sorted(f for f in files if f.startswith("straight_") and f.endswith(".safetensors"))[-1]
    stem = final.removesuffix(".safetensors")
    assert {f"checkpoints/{stem}_step_{n:07d}.{ext}" for n in (2, 4) for ext in ("safetensors", "training")} <= files

    import folder_paths

    root = Path(folder_paths.get_folder_paths("mcdm")[0])
    reloaded = load_mcdm(root / final)
    x = torch.randn(2, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    context = torch.randn(2, 127, 768, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([10.0, 700.0])
    with torch.no_grad():
        ours = straight.unet_module()(x, t, context=context, transformer_options={})
        theirs = reloaded.unet_module()(x, t, context=context, transformer_options={})
        assert torch.equal(ours, theirs)
        clip_tokens = torch.randn(1, 50, 768)
        assert torch.equal(straight.adapter(clip_tokens, x[:1, :4]), reloaded.adapter(clip_tokens, x[:1, :4]))

    # Cancel pressed during step 3: ComfyUI's progress hook (as main.py installs it) raises in that step's update;
    # a checkpoint at step 3 is written, then the run stops
    hook = comfy.utils.PROGRESS_BAR_HOOK

    def cancel_during_step_three(value, total, preview, prompt_id=None, node_id=None):
        if value == 3:
            comfy.model_management.interrupt_current_processing(True)
        comfy.model_management.throw_exception_if_processing_interrupted()

    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", cancel_during_step_three)
    before = mcdm_files()
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        train(world, 4, checkpoint_every=0, filename_prefix="cut")
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", hook)
    written = mcdm_files() - before
    cut = [f for f in written if f.endswith("_step_0000003.safetensors")]
    assert len(cut) == 1 and not any(f.startswith("cut_") for f in written), written

    resumed, losses = train(world, 4, resume_from=cut[0], filename_prefix="resumed")
    assert len(losses["loss"]) == 1
    expected = unet_weights(straight)
    for key, value in unet_weights(resumed).items():
        assert torch.equal(value, expected[key]), key
    # and from the periodic step-2 checkpoint of the first run
    again, _ = train(world, 4, resume_from=f"checkpoints/{stem}_step_0000002.safetensors", filename_prefix="again")
    assert all(torch.equal(v, expected[k]) for k, v in unet_weights(again).items())


@pytest.mark.slow
def test_gradient_checkpointing_trains_the_same_model_and_bf16_autocast_trains(world):
    plain, plain_loss = train(world, 2, filename_prefix="plain")
    checkpointed, checkpointed_loss = train(world, 2, gradient_checkpointing=True, filename_prefix="recompute")
    assert checkpointed_loss["loss"] == pytest.approx(plain_loss["loss"], rel=1e-5)
    expected = unet_weights(plain)
    for key, value in unet_weights(checkpointed).items():
        torch.testing.assert_close(value, expected[key], rtol=1e-5, atol=1e-6)
    half, half_loss = train(world, 2, mixed_precision="bf16", filename_prefix="bf16")
    assert half_loss["loss"] == pytest.approx(plain_loss["loss"], rel=0.05)
    assert all(torch.isfinite(v).all() for v in unet_weights(half).values())


def test_bad_inputs_are_refused_before_anything_is_written(world, comfy):
    from precise_edit.nodes.mcdm.nodes_train import NULL_GUIDER, MCDMTrainer

    before = mcdm_files()
    broken = write_pairs_folder(comfy.base_dir / "input" / "mcdm_broken_pairs", make_pairs(2, 16))
    (broken / "prompt.json").write_text((broken / "prompt.json").read_text() + "{not json\n")
    with pytest.raises(ValueError, match=r"pairs_folder: .*prompt.json line 3: not valid JSON"):
        train(world, 2, pairs_folder=broken.name)
    with pytest.raises(ValueError, match=r"pairs_folder 'nowhere/at/all': no such folder"):
        train(world, 2, pairs_folder="nowhere/at/all")
    with pytest.raises(ValueError, match="resume_from 'missing.safetensors'"):
        train(world, 2, resume_from="missing.safetensors")
    with pytest.raises(ValueError, match="joint_clip / clip_vision"):
        MCDMTrainer.execute(
            world["model"],
            world["clip"],
            world["vae"],
            world["folder"].name,
            2,
            4,
            1e-4,
            0,
            0,
            "x",
            NULL_GUIDER,
            "fp32",
            False,
            "",
        )
    assert mcdm_files() == before
