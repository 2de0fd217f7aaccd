"""Identity Token Trainer (S2Edit) on the tiny SD1.5 model, executed by ComfyUI's PromptExecutor (so under its
inference mode): the loss falls, the orthogonality term drives |cos(e_P, e_[I])| down, spatial control keeps [I]'s
attention at exactly 0 outside M_obj at every step and at inference, and the saved files reproduce the trainer's
outputs through the stock LoraLoader and CLIPTextEncode."""

from pathlib import Path

import numpy as np
import pytest
import torch
from attention_helpers import SD15
from identity_trainer_graph import INITIAL_PROMPT, PROMPT, STEPS, trainer
from PIL import Image

IMAGE_FILE = "pe_identity_source.png"
MASK_FILE = "pe_identity_mask.png"
SIZE = 64
LAMBDA = 10.0
ORTHOGONALITY_STEPS = 12
ORTHOGONALITY_TEXT_ENCODER_LR = 2e-3
LAYERS = 7  # cross-attention layers of the tiny UNet: 2 down, 1 middle, 4 up


@pytest.fixture(scope="module")
def inputs(comfy, tiny_models):
    import folder_paths

    generator = np.random.default_rng(3)
    pixels = (generator.random((SIZE, SIZE, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(f"{folder_paths.get_input_directory()}/{IMAGE_FILE}")
    mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
    mask[:, : SIZE // 2] = 255
    Image.fromarray(mask).save(f"{folder_paths.get_input_directory()}/{MASK_FILE}")
    return torch.from_numpy(pixels.astype(np.float32) / 255.0)[None], torch.from_numpy(mask > 0).float()[None]


def base_graph() -> dict:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": SD15}},
        "2": {"class_type": "LoadImage", "inputs": {"image": IMAGE_FILE}},
        "3": {"class_type": "LoadImageMask", "inputs": {"image": MASK_FILE, "channel": "red"}},
        "4": {"class_type": "PreciseEdit_SpatialControl", "inputs": {"threshold": 0.3}},
        "6": {
            "class_type": "PreciseEdit_OrthogonalityLoss",
            "inputs": {"clip": ["1", 1], "source_prompt": "", "weight": LAMBDA, "vectors": "eos_output_i_output"},
        },
    }


def report_node(trainer_id: str) -> dict:
    inputs = {"clip": [trainer_id, 1], "source_prompt": "", "weight": 0.0, "vectors": "eos_output_i_output"}
    return {"class_type": "PreciseEdit_OrthogonalityLoss", "inputs": {**inputs, "identity": [trainer_id, 2]}}


def saved_files() -> set[str]:
    import folder_paths

    return {
        p.name for folder in ("embeddings", "loras") for p in Path(folder_paths.get_folder_paths(folder)[0]).glob("*")
    }


def spy_on_training(monkeypatch) -> dict:
    """Wrap the trainer's training call: record its result and, at every step, [I]'s attention outside M_obj."""
    from precise_edit.core.attention.attention_store import AttentionStore
    from precise_edit.core.attention.token_grid import mask_to_token_grid
    from precise_edit.nodes.s2edit import nodes_identity as identity_trainer

    original = identity_trainer.train_identity
    seen: dict = {"outside": [], "inside": [], "layers": []}

    def spy(model, clip, subjects, settings, *, semantic, spatial, on_step, probe=None):
        store = AttentionStore()
        masks: dict = {}

        def check(report):
            outside = inside = 0.0
            for entry in store.layers.values():
                grid = mask_to_token_grid(masks["[I]"], entry.grid)[0]
                column = entry.mean[..., store.words["[I]"]].sum(-1)[0]
                outside = max(outside, float(column[grid == 0].abs().max()))
                inside = max(inside, float(column[grid > 0].min()))
            seen["outside"].append(outside)
            seen["inside"].append(inside)
            seen["layers"].append(len(store.layers))
            on_step(report)

        masks["[I]"] = subjects[0].mask if subjects[0].mask is not None else spatial.mask
        seen["result"] = original(
            model, clip, subjects, settings, semantic=semantic, spatial=spatial, on_step=check, probe=store
        )
        return seen["result"]

    monkeypatch.setattr(identity_trainer, "train_identity", spy)
    return seen


@pytest.fixture(scope="module")
def trained(run_graph, inputs):
    monkeypatch = pytest.MonkeyPatch()
    seen = spy_on_training(monkeypatch)
    before = saved_files()
    graph = {
        **base_graph(),
        "5": trainer(mask=["3", 0], semantic_control=["6", 0], spatial_control=["4", 0]),
    }
    try:
        out = run_graph(graph, outputs=["1", "5"])
    finally:
        monkeypatch.undo()
    return {"base": out["1"], "trainer": out["5"], "seen": seen, "new": saved_files() - before}


def epsilon(model, conditioning: list, latent: torch.Tensor, noise: torch.Tensor, sigma_percent: float):
    """ε̂ of ``model`` on ``latent`` (ComfyUI convention) noised to the σ of ``sigma_percent``."""
    from precise_edit.nodes.common.prepared_model import GuiderNoisePredictor, run_prepared

    out = {}

    def work(guider, options, x0):
        sigma = torch.tensor(guider.inner_model.model_sampling.percent_to_sigma(sigma_percent))
        out["eps"] = GuiderNoisePredictor(guider, options).conditional(x0 + noise * sigma, sigma)
        return x0

    with torch.no_grad():
        run_prepared(model, conditioning, conditioning, latent, sigmas=torch.tensor([1.0, 0.0]), work=work)
    return out["eps"]


def fit_loss(model, conditioning: list, latent: torch.Tensor) -> float:
    """The ε-MSE at four fixed noise levels and noises."""
    losses = []
    for i, level in enumerate((0.2, 0.4, 0.6, 0.8)):
        noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(100 + i))
        losses.append(float(((epsilon(model, conditioning, latent, noise, level) - noise) ** 2).mean()))
    return sum(losses) / len(losses)


@pytest.fixture(scope="module")
def stock(trained, inputs):
    """The saved files through the stock LoraLoader and CLIPTextEncode on the checkpoint's MODEL and CLIP."""
    import nodes

    model, clip, vae = trained["base"][:3]
    identity = trained["trainer"][2]
    lora_model, lora_clip = nodes.LoraLoader().load_lora(model, clip, identity.lora_name, 1.0, 1.0)
    with torch.no_grad():
        latent = vae.encode(inputs[0])
    return {
        "model": lora_model,
        "clip": lora_clip,
        "conditioning": nodes.CLIPTextEncode().encode(lora_clip, identity.expand(PROMPT))[0],
        "latent": latent,
    }


@pytest.mark.slow
def test_training_runs_under_inference_mode_and_saves_both_files(trained):
    identity = trained["trainer"][2]
    token = identity.token("[I]")
    assert trained["new"] == {f"{token.embedding_name}.safetensors", identity.lora_name}
    assert token.vectors["clip_l"].shape == (1, 768) and token.mask.shape == (1, SIZE, SIZE)
    assert identity.expand("a [I] lady") == f"a embedding:{token.embedding_name} lady"
    assert not any(k.startswith("lora_te") for k in identity.lora)
    assert any(k.startswith("lora_unet_down_blocks_0_attentions_0_") for k in identity.lora)
    curve = trained["trainer"][3]
    assert curve.dim() == 4 and curve.shape[-1] == 3


def test_the_loss_falls(trained, stock):
    import nodes

    model, clip = trained["base"][:2]
    before = fit_loss(model, nodes.CLIPTextEncode().encode(clip, INITIAL_PROMPT)[0], stock["latent"])
    after = fit_loss(stock["model"], stock["conditioning"], stock["latent"])
    assert after < 0.92 * before, (before, after)


@pytest.mark.slow
def test_orthogonality_drives_the_cosine_below_0_05_only_when_enabled(run_graph, inputs):
    """Same seed and settings (text-encoder LoRA on, learning rates linear to 0 over 12 steps), with and without the
    term: |cos(e_P, e_[I])| as the node measures it after training (COSINE of Orthogonality Loss on the trainer's
    CLIP with the identity connected).

    On the tiny random CLIP-L the output rows share one direction (the mean row has 0.89 of the rows' norm), so
    [I]'s row starts at |cos| 0.89 with the prompt's EOS row. The text-encoder LoRA, trained as S2Edit fine-tunes
    the text side, brings it near 0 within a few steps, while without the term the reconstruction pulls it up to
    0.96-0.98. Near 0 a constant learning rate makes it swing by ±0.1-0.3 from step to step (|cos| has a kink at 0,
    Adam keeps its step size), so the schedule decays: 0.013, 0.012 and 0.016 for seeds 0-2 (8 steps: 0.03-0.07).
    λ = 10 instead of the paper's 0.1, which barely moves the cosine in so few steps."""
    change = dict(
        steps=ORTHOGONALITY_STEPS,
        train_text_encoder=True,
        text_encoder_learning_rate=ORTHOGONALITY_TEXT_ENCODER_LR,
        learning_rate_schedule="linear",
        mask=["3", 0],
        spatial_control=["4", 0],
    )
    on = run_graph(
        {**base_graph(), "5": trainer(**change, semantic_control=["6", 0]), "7": report_node("5")}, outputs=["5", "7"]
    )
    off = run_graph({**base_graph(), "5": trainer(**change), "7": report_node("5")}, outputs=["5", "7"])
    enabled, disabled = on["7"][1], off["7"][1]
    initial = float(on["5"][2].metadata["initial_cosine_[I]"])
    assert off["5"][2].metadata["semantic_weight"] == "0.0"
    assert on["5"][2].metadata["learning_rate_schedule"] == "linear"
    assert initial > 0.8 and enabled < 0.05 and disabled > 0.9, (initial, enabled, disabled)


def test_spatial_control_zeroes_identity_attention_outside_the_mask_at_every_step(trained):
    seen = trained["seen"]
    assert len(seen["outside"]) == STEPS and set(seen["layers"]) == {LAYERS}
    assert seen["outside"] == [0.0] * STEPS
    assert min(seen["inside"]) > 0.0


def test_spatial_control_at_inference(trained, inputs):
    from attention_helpers import sample

    from precise_edit.core.attention.attention_store import AttentionStore
    from precise_edit.core.attention.token_grid import mask_to_token_grid
    from precise_edit.nodes.attention.attention_capture import AttentionCapture
    from precise_edit.nodes.attention.attention_effect import PromptTarget, StepRange
    from precise_edit.nodes.attention.cross_attention_patch import add_cross_attention_effect, cross_attention_layers
    from precise_edit.nodes.attention.prompt_tokens import locate_words
    from precise_edit.nodes.s2edit.nodes_identity import mask_identity_attention

    model, clip, identity = trained["trainer"][:3]
    text = "a [I] lady with a smile"
    positions = locate_words(clip, identity.expand(text), f"embedding:{identity.token('[I]').embedding_name}")
    store = AttentionStore(words={"[I]": positions.all_positions})
    masked = mask_identity_attention(model, clip, identity, text)
    capture = AttentionCapture(
        store=store,
        context_length=positions.context_length,
        heads=None,
        steps=StepRange(1e9, 0.0),
        target=PromptTarget(),
    )
    probed = add_cross_attention_effect(masked, capture, cross_attention_layers(model))
    positive = clip.encode_from_tokens_scheduled(clip.tokenize(identity.expand(text)))
    negative = clip.encode_from_tokens_scheduled(clip.tokenize(""))
    sample(probed, positive, negative, steps=2)
    maps = store.token_maps([positions.all_positions], (SIZE, SIZE))[0, 0]
    assert len(store.layers) == LAYERS
    for entry in store.layers.values():
        grid = mask_to_token_grid(inputs[1], entry.grid)[0]
        column = entry.mean[..., positions.all_positions].sum(-1)[0]
        assert float(column[grid == 0].abs().max()) == 0.0 and float(column[grid > 0].min()) > 0.0
    assert float(maps[:, : SIZE // 2].min()) > 0.0


def test_saved_files_reproduce_the_trainer_through_stock_nodes(trained, stock):
    import nodes
    from precise_edit.nodes.s2edit.nodes_identity import mask_identity_attention

    trained_model, trained_clip, identity = trained["trainer"][:3]
    result = trained["seen"]["result"]
    ours = nodes.CLIPTextEncode().encode(trained_clip, identity.expand(PROMPT))[0]
    assert torch.equal(ours[0][0], stock["conditioning"][0][0])
    torch.testing.assert_close(stock["conditioning"][0][0], result.conditioning["[I]"], rtol=1e-5, atol=1e-5)

    noise = torch.randn(stock["latent"][:1].shape, generator=torch.Generator().manual_seed(0))
    as_trained = mask_identity_attention(stock["model"], stock["clip"], identity, PROMPT)
    eps = epsilon(as_trained, stock["conditioning"], stock["latent"], noise, 0.5)
    torch.testing.assert_close(eps, result.reference_epsilon, rtol=1e-4, atol=1e-4)
    ours_eps = epsilon(
        mask_identity_attention(trained_model, trained_clip, identity, PROMPT), ours, stock["latent"], noise, 0.5
    )
    assert torch.equal(ours_eps, eps)


REFERENCE_PROMPT = "a photo of a lady with [A] makeup"


def test_compositional_training_learns_both_tokens_with_the_text_encoder(run_graph, inputs, monkeypatch):
    """[I] and [A] learned jointly, each masked by its own mask; the text-encoder LoRA loads with the stock nodes
    and reproduces the training-time conditioning of both prompts and of the mixed prompt's tokens."""
    import nodes

    seen = spy_on_training(monkeypatch)
    reference_mask = {"class_type": "InvertMask", "inputs": {"mask": ["3", 0]}}
    graph = {
        **base_graph(),
        "8": reference_mask,
        "5": trainer(
            steps=1,
            train_text_encoder=True,
            text_encoder_learning_rate=1e-2,
            mask=["3", 0],
            spatial_control=["4", 0],
            reference_image=["2", 0],
            reference_prompt=REFERENCE_PROMPT,
            reference_subject="makeup",
            reference_mask=["8", 0],
        ),
    }
    out = run_graph(graph, outputs=["1", "5", "8"])
    identity = out["5"][2]
    assert [t.placeholder for t in identity.tokens] == ["[I]", "[A]"]
    attribute = identity.token("[A]")
    assert attribute.embedding_name == identity.token("[I]").embedding_name + "_A"
    # [A] keeps the reference mask it was given. Later ComfyUIs decode PNGs through PyAV, which can read 255 as 254.
    assert torch.equal(attribute.mask, out["8"][0])
    assert float((attribute.mask - (1.0 - inputs[1])).abs().max()) <= 1 / 255 + 1e-6
    assert any(k.startswith("lora_te_text_model_encoder_layers_") for k in identity.lora)

    model, clip = out["1"][:2]
    _, lora_clip = nodes.LoraLoader().load_lora(model, clip, identity.lora_name, 1.0, 1.0)
    result = seen["result"]
    for placeholder, prompt in (("[I]", PROMPT), ("[A]", REFERENCE_PROMPT)):
        stock = nodes.CLIPTextEncode().encode(lora_clip, identity.expand(prompt))[0][0][0]
        without_lora = nodes.CLIPTextEncode().encode(clip, identity.expand(prompt))[0][0][0]
        trained = result.conditioning[placeholder]
        # Load LoRA merges the update into the CLIP's stored (fp16) weights; training adds it in float32.
        error = float((stock - trained).norm() / trained.norm())
        effect = float((without_lora - trained).norm() / trained.norm())
        assert error < 2e-3 and error < 0.1 * effect, (placeholder, error, effect)
    mixed = identity.expand("a [I] lady with [A] makeup")
    assert "[" not in mixed and mixed.count("embedding:") == 2
    assert seen["outside"] == [0.0]


def test_interrupt_writes_nothing_and_leaves_the_graph_usable(run_graph, inputs, monkeypatch):
    import comfy.model_management
    import comfy.utils

    from harness.errors import PromptFailed

    hook = comfy.utils.PROGRESS_BAR_HOOK
    updates = []

    def interrupt_after_first_step(value, total, preview, prompt_id=None, node_id=None):
        updates.append(value)
        comfy.model_management.interrupt_current_processing(True)
        return hook(value, total, preview, prompt_id, node_id)

    before = saved_files()
    graph = {**base_graph(), "5": trainer(steps=3, seed=5)}
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", interrupt_after_first_step)
    with pytest.raises(PromptFailed, match="node 5 .* was interrupted"):
        run_graph(graph, outputs=["5"])
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", hook)
    assert updates == [1] and not comfy.model_management.processing_interrupted()
    assert saved_files() == before

    from attention_helpers import encode, sample

    model, clip = run_graph({"1": base_graph()["1"]}, outputs=["1"])["1"][:2]
    conds = encode(clip, "a photo of a lady"), encode(clip, "")
    first = sample(model, *conds, steps=2)
    assert torch.equal(sample(model, *conds, steps=2), first)
    assert not model.weight_wrapper_patches and not clip.patcher.weight_wrapper_patches


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"prompt": "a photo of a lady with glasses"}, r"prompt: it must contain the placeholder \[I\]"),
        ({"subject": "cat"}, r"subject of \[I\] \('cat'\): 'cat' is not in the prompt"),
        ({"mask": ["9", 0]}, r"mask: the mask is 32×64 but the image is 64×64"),
        ({"steps": 0}, r"steps"),
        ({"name": "my identity"}, r"name 'my identity': use letters, digits"),
        (
            {"model": ["10", 0]},
            r"clip: this text encoder gives 768-wide embeddings but the model's cross-attention "
            r"expects 2048",
        ),
    ],
)
def test_bad_inputs_give_clear_errors(run_graph, inputs, change, message):
    from harness.errors import PromptFailed

    before = saved_files()
    graph = {
        **base_graph(),
        "9": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 32, "height": 64}},
        "10": {
            "class_type": "UNETLoader",
            "inputs": {"unet_name": "tiny-sdxl-unet.safetensors", "weight_dtype": "default"},
        },
        "5": trainer(**change),
    }
    with pytest.raises(PromptFailed, match=message):
        run_graph(graph, outputs=["5"])
    assert saved_files() == before


def test_the_text_encoder_is_backpropagated_through_a_private_copy_never_the_users(sd15):
    """The trainer encodes through a copy of the CLIP's module tree with out-of-place residuals; the user's CLIP
    layers are never given another ``forward`` (project rule), and the copy encodes exactly as CLIP Text Encode."""
    from comfy.clip_model import CLIPLayer

    from precise_edit.nodes.s2edit.identity_training import encode_with_grad

    clip = sd15.clip
    layers = [module for module in clip.cond_stage_model.modules() if isinstance(module, CLIPLayer)]
    parameters = dict(clip.cond_stage_model.named_parameters())
    swapped_while_running: list[bool] = []
    hooks = [
        layer.register_forward_pre_hook(
            lambda _module, _args: swapped_while_running.append(any("forward" in vars(each) for each in layers))
        )
        for layer in layers
    ]
    tokens = clip.tokenize("a photo of a cat")
    try:
        cond, _ = encode_with_grad(clip, tokens)
    finally:
        for hook in hooks:
            hook.remove()
    assert swapped_while_running == [False] * len(layers)
    assert all(parameter is parameters[name] for name, parameter in clip.cond_stage_model.named_parameters())
    torch.testing.assert_close(cond, clip.encode_from_tokens(tokens), rtol=0, atol=0)
