"""Identity Token Trainer (S2Edit) on SDXL: the tiny SDXL UNet with a small SDXL CLIP (ComfyUI's own CLIP-L + CLIP-G
classes at their real widths, three layers each). The embedding file holds ``clip_l`` and ``clip_g``, stock CLIP Text
Encode with ``embedding:<name>`` and the stock LoraLoader reproduce the trainer's conditioning, pooled output and
noise prediction, and the ADM vector follows the learned token's pooled output."""

from pathlib import Path

import pytest
import torch
from identity_trainer_graph import INITIAL_PROMPT, PROMPT, trainer

SIZE = 64
SMALL_TEXT_ENCODER = {"num_hidden_layers": 3, "intermediate_size": 512}  # SDXL reads layer -2


def sdxl_clip(embedding_directory: list[str], seed: int):
    """An SDXL CLIP built as the stock loaders build one (``SDXLClipModel`` + ``SDXLTokenizer`` in ``comfy.sd.CLIP``),
    with 3 layers per encoder through the ``clip_l/g_model_config`` options, seeded random weights. Stock loaders
    cannot read such a file (they size CLIP-G from its 32-layer config), so it is built here."""
    from types import SimpleNamespace

    import comfy.sd
    import comfy.sdxl_clip

    from harness.tiny_models import init_parameters

    target = SimpleNamespace(clip=comfy.sdxl_clip.SDXLClipModel, tokenizer=comfy.sdxl_clip.SDXLTokenizer, params={})
    options = {"clip_l_model_config": SMALL_TEXT_ENCODER, "clip_g_model_config": SMALL_TEXT_ENCODER}
    clip = comfy.sd.CLIP(target, embedding_directory=embedding_directory, model_options=options)
    init_parameters(clip.cond_stage_model, seed)
    return clip


@pytest.fixture(scope="module")
def sdxl(comfy, tiny_models, sd15):
    import folder_paths

    import nodes

    model = nodes.UNETLoader().load_unet("tiny-sdxl-unet.safetensors", "default")[0]
    clip = sdxl_clip(folder_paths.get_folder_paths("embeddings"), 7000)
    image = torch.rand(1, SIZE, SIZE, 3, generator=torch.Generator().manual_seed(4))
    return model, clip, sd15.vae, image


def train(sdxl, monkeypatch, **change):
    """Run the trainer node as the executor does (under inference mode); returns its outputs and the raw result."""
    import comfy.utils

    from precise_edit.nodes.s2edit import nodes_identity as identity_trainer
    from precise_edit.nodes.s2edit.nodes_identity import IdentityTokenTrainer

    original = identity_trainer.train_identity
    seen = {}

    def spy(*args, **kwargs):
        seen["result"] = original(*args, **kwargs)
        return seen["result"]

    monkeypatch.setattr(identity_trainer, "train_identity", spy)
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", None)
    model, clip, vae, image = sdxl
    graph_node = trainer(**{"steps": 2, "train_text_encoder": True, "name": "pe_sdxl", **change})
    settings = {k: v for k, v in graph_node["inputs"].items() if k not in ("model", "clip", "vae", "image")}
    with torch.inference_mode():
        out = IdentityTokenTrainer.execute(model, clip, vae, image, **settings)
    return out.result, seen["result"]


@pytest.fixture(scope="module")
def trained(sdxl):
    monkeypatch = pytest.MonkeyPatch()
    try:
        return train(sdxl, monkeypatch)
    finally:
        monkeypatch.undo()


def epsilon(model, conditioning: list, latent: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """ε̂ of ``model`` at the σ of 50 % for ``conditioning`` (its pooled output becomes SDXL's ADM vector)."""
    from precise_edit.nodes.common.prepared_model import GuiderNoisePredictor, run_prepared

    out = {}

    def work(guider, options, x0):
        sigma = torch.tensor(guider.inner_model.model_sampling.percent_to_sigma(0.5))
        out["eps"] = GuiderNoisePredictor(guider, options).conditional(x0 + noise * sigma, sigma)
        return x0

    with torch.no_grad():
        run_prepared(model, conditioning, conditioning, latent, sigmas=torch.tensor([1.0, 0.0]), work=work)
    return out["eps"]


@pytest.mark.slow
def test_sdxl_embedding_file_holds_both_encoders(trained):
    import folder_paths
    from safetensors.torch import load_file

    (_, _, identity, _), result = trained
    token = identity.token("[I]")
    path = folder_paths.get_full_path("embeddings", f"{token.embedding_name}.safetensors")
    saved = load_file(path)
    assert {k: tuple(v.shape) for k, v in saved.items()} == {"clip_l": (1, 768), "clip_g": (1, 1280)}
    for key in ("clip_l", "clip_g"):
        assert torch.equal(saved[key], result.vectors[token.embedding_name][key])
    assert any(k.startswith("lora_te1_text_model_encoder_layers_") for k in identity.lora)
    assert any(k.startswith("lora_te2_text_model_encoder_layers_") for k in identity.lora)
    assert any(k.startswith("lora_unet_") for k in identity.lora)


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).norm() / want.norm())


@pytest.mark.slow
def test_stock_nodes_reproduce_the_sdxl_trainer(sdxl, trained):
    """LoraLoader + CLIP Text Encode (embedding:<name>) on the checkpoint's models give exactly the trainer's MODEL
    and CLIP outputs, and the training-time conditioning, pooled output and noise prediction up to the fp16 merge of
    the text-encoder LoRA; that noise prediction needs the ADM vector built from the trained pooled output."""
    import nodes

    model, clip, vae, image = sdxl
    (trained_model, trained_clip, identity, _), result = trained
    text = identity.expand(PROMPT)
    lora_model, lora_clip = nodes.LoraLoader().load_lora(model, clip, identity.lora_name, 1.0, 1.0)
    stock = nodes.CLIPTextEncode().encode(lora_clip, text)[0]
    ours = nodes.CLIPTextEncode().encode(trained_clip, text)[0]
    assert torch.equal(ours[0][0], stock[0][0])
    assert torch.equal(ours[0][1]["pooled_output"], stock[0][1]["pooled_output"])

    # Load LoRA merges the text-encoder update into the CLIP's stored (fp16) weights; training adds it in float32.
    initial = nodes.CLIPTextEncode().encode(clip, INITIAL_PROMPT)[0]
    pairs = {
        "conditioning": (stock[0][0], result.conditioning["[I]"], initial[0][0]),
        "pooled": (stock[0][1]["pooled_output"], result.pooled["[I]"], initial[0][1]["pooled_output"]),
    }
    for name, (got, want, before) in pairs.items():
        error, effect = relative_error(got, want), relative_error(before, want)
        assert error < 2e-3 and error < 0.1 * effect, (name, error, effect)

    with torch.no_grad():
        latent = vae.encode(image)
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(0))
    eps = epsilon(lora_model, stock, latent, noise)
    assert torch.equal(epsilon(trained_model, ours, latent, noise), eps)
    error = relative_error(eps, result.reference_epsilon)
    # the same cross-attention with the initial prompt's pooled output (the ADM vector before training)
    stale = [[stock[0][0], {**stock[0][1], "pooled_output": initial[0][1]["pooled_output"]}]]
    stale_error = relative_error(epsilon(lora_model, stale, latent, noise), result.reference_epsilon)
    assert error < 2e-3 and stale_error > 10 * error, (error, stale_error)


def saved_files() -> set[str]:
    import folder_paths

    return {
        p.name for folder in ("embeddings", "loras") for p in Path(folder_paths.get_folder_paths(folder)[0]).glob("*")
    }


def test_sdxl_clip_with_an_sd1_model_is_refused(sdxl, sd15, monkeypatch):
    before = saved_files()
    with pytest.raises(ValueError, match=r"clip: this text encoder gives 2048-wide embeddings but the model's cross"):
        train((sd15.model, *sdxl[1:]), monkeypatch, steps=1)
    assert saved_files() == before
