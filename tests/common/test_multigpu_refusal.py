"""Null-text inversion and identity training backpropagate through the UNet. Under a MultiGPU node ComfyUI runs
``calc_cond_batch`` in worker threads under ``no_grad`` (its trigger: ``multigpu_clones`` in the model options), so
both refuse such a model with an error naming the model input, before any step and without writing a file."""

from pathlib import Path

import pytest
import torch
from attention_helpers import LATENT_HW, PROMPT, encode


def split_over_gpus(model):
    """A clone of ``model`` with the model options a MultiGPU node leaves: one clone per device."""
    patched = model.clone()
    patched.model_options["multigpu_clones"] = {torch.device("cpu"): patched, torch.device("meta"): patched.clone()}
    return patched


def saved_files() -> set[Path]:
    import folder_paths

    return {p for folder in ("embeddings", "loras") for p in Path(folder_paths.get_folder_paths(folder)[0]).glob("*")}


def test_null_text_inversion_refuses_a_model_split_over_gpus(sd15):
    from precise_edit.nodes.s2edit.nodes_edit import NullTextInversion

    latent = {"samples": torch.randn(1, 4, *LATENT_HW, generator=torch.Generator().manual_seed(0))}
    inputs = dict(
        positive=encode(sd15.clip, PROMPT),
        negative=encode(sd15.clip, ""),
        latent=latent,
        steps=2,
        guidance=7.5,
        inner_steps=2,
        epsilon=1e-5,
        mode="null_text",
    )
    message = r"model: null-text inversion backpropagates through the UNet, but this MODEL is split over 2 devices"
    with torch.inference_mode(), pytest.raises(ValueError, match=message):
        NullTextInversion.execute(model=split_over_gpus(sd15.model), **inputs)
    with torch.inference_mode():
        plain = NullTextInversion.execute(model=split_over_gpus(sd15.model), **{**inputs, "mode": "plain_ddim"})
    assert torch.isfinite(plain.result[0].noise).all()


def test_identity_training_refuses_a_model_split_over_gpus(sd15):
    from precise_edit.nodes.s2edit.nodes_identity import IdentityTokenTrainer

    before = saved_files()
    image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    message = r"model: identity training backpropagates through the UNet, but this MODEL is split over 2 devices"
    with torch.inference_mode(), pytest.raises(ValueError, match=message):
        IdentityTokenTrainer.execute(
            model=split_over_gpus(sd15.model),
            clip=sd15.clip,
            vae=sd15.vae,
            image=image,
            prompt="a photo of a [I] lady",
            subject="lady",
            steps=2,
            token_learning_rate=5e-2,
            unet_learning_rate=2e-3,
            text_encoder_learning_rate=1e-3,
            rank=2,
            train_text_encoder=False,
            seed=0,
            name="pe_multigpu",
        )
    assert saved_files() == before
