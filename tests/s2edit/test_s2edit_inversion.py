"""Null-Text Inversion and Inversion Reconstruct on the tiny SD1.5 model, executed by ComfyUI's PromptExecutor (so
under its inference mode): fidelity against plain DDIM inversion, early stopping and evaluation counts, the model
left as it was, Interrupt, and clear errors for bad inputs."""

import pytest
import torch
from attention_helpers import LATENT_HW, PROMPT, SD15, encode, sample

from harness.errors import PromptFailed
from harness.executor import last_events

SOURCE_FILE = "pe_inversion_source.latent"
STEPS, INNER, GUIDANCE = 5, 5, 7.5
NULL_TEXT, PLAIN_DDIM = "null_text", "plain_ddim"
NOTEBOOK_EPSILON = 1e-5
# Early stopping needs a threshold at the scale of this model's step losses (0.1 to 1.5), far above a trained
# model's: it then stops the first steps only.
MODEL_SCALE_EPSILON = 0.2
# On random weights the CLIP embeddings of "" and of the prompt are unrelated: the guidance gap ‖ε_c − ε_∅‖/‖ε_c‖
# is 0.60, far more than 5 × 5 Adam steps at the notebook's learning rate can close. A null text one word away
# from the prompt has a gap of 0.15, the order of a trained model's.
NULL_PROMPT = "a photo of a cat wearing a blue hat"


def source_latent() -> torch.Tensor:
    """A latent of the scale of SD1.5 VAE latents (unit variance after ComfyUI's × 0.18215)."""
    return torch.randn(1, 4, *LATENT_HW, generator=torch.Generator().manual_seed(7)) / 0.18215


@pytest.fixture(scope="module")
def source_file(comfy):
    import folder_paths
    import safetensors.torch

    path = f"{folder_paths.get_input_directory()}/{SOURCE_FILE}"
    safetensors.torch.save_file({"latent_tensor": source_latent(), "latent_format_version_0": torch.tensor([])}, path)
    return SOURCE_FILE


def base_graph() -> dict:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": SD15}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": PROMPT}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": NULL_PROMPT}},
        "4": {"class_type": "LoadLatent", "inputs": {"latent": SOURCE_FILE}},
    }


def inversion_node(mode: str = NULL_TEXT, epsilon: float = NOTEBOOK_EPSILON, **inputs) -> dict:
    settings = dict(steps=STEPS, guidance=GUIDANCE, inner_steps=INNER, epsilon=epsilon, mode=mode)
    links = dict(model=["1", 0], positive=["2", 0], negative=["3", 0], latent=["4", 0])
    return {"class_type": "PreciseEdit_NullTextInversion", "inputs": {**links, **settings, **inputs}}


def reconstruct_node(inversion: str, model: list | None = None) -> dict:
    inputs = {"model": model or ["1", 0], "inversion": [inversion, 0], "positive": ["2", 0]}
    return {"class_type": "PreciseEdit_InversionReconstruct", "inputs": inputs}


def unet_state(model) -> list[tuple[int, bool]]:
    return [(id(p), p.is_inference()) for p in model.model.diffusion_model.parameters()]


@pytest.fixture(scope="module")
def loaded(run_graph, tiny_models, source_file):
    """The checkpoint as the executor caches it, its weights and options, and a sample taken before any inversion."""
    model, clip = run_graph(base_graph(), outputs=["1"])["1"][:2]
    conds = encode(clip, PROMPT), encode(clip, NULL_PROMPT)
    state = {"weights": unet_state(model), "options": repr(model.model_options), "before": sample(model, *conds)}
    return {"model": model, "conds": conds, **state}


@pytest.fixture(scope="module")
def runs(run_graph, loaded):
    """Null-text (notebook ε), plain DDIM and null-text with early stopping, in one prompt."""
    prompt = {
        **base_graph(),
        "5": inversion_node(),
        "6": reconstruct_node("5"),
        "7": inversion_node(PLAIN_DDIM),
        "8": reconstruct_node("7"),
        "9": inversion_node(epsilon=MODEL_SCALE_EPSILON),
    }
    outputs = run_graph(prompt, outputs=["4", "5", "6", "7", "8", "9"])
    return {name: outputs[node][0] for name, node in zip(("source", *"56789"), "456789", strict=True)}


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).square().mean())


@pytest.mark.slow
def test_null_text_reconstruction_is_far_better_than_plain_ddim_at_guidance_7_5(runs):
    source = runs["source"]["samples"]
    torch.testing.assert_close(source, source_latent())
    null_text, plain = mse(runs["6"]["samples"], source), mse(runs["8"]["samples"], source)
    print(
        f"reconstruction MSE (latent units, source variance {source.var():.1f}): plain DDIM {plain:.1f}, "
        f"null-text {null_text:.1f} ({plain / null_text:.1f}× lower)"
    )
    assert null_text < plain / 4
    inversion = runs["5"]
    assert len(inversion.null_embeddings) == STEPS and inversion.settings.guidance == GUIDANCE
    assert inversion.noise.shape == source.shape and runs["7"].null_embeddings is None
    embeddings = torch.stack(inversion.null_embeddings)
    assert (embeddings[1:] - embeddings[:-1]).abs().amax() > 0, "the null embedding was not optimised"


def test_the_replay_retraces_the_optimisation(runs, loaded):
    from precise_edit.core.s2edit.ddim_inversion import to_variance_preserving

    inversion = runs["5"]
    scale = loaded["model"].model.latent_format.scale_factor
    reached = to_variance_preserving(inversion.optimisation.reconstruction, inversion.schedule.sigmas[0]) / scale
    tolerance = 1e-4 * float(runs["source"]["samples"].abs().max())
    torch.testing.assert_close(runs["6"]["samples"], reached, atol=tolerance, rtol=0)


def test_early_stopping_cuts_unet_evaluations_below_the_worst_case(runs):
    worst = STEPS + STEPS * (INNER + 2)
    counts = {}
    for node in "59":
        optimisation = runs[node].optimisation
        per_step = zip(optimisation.iterations, optimisation.early_stopped, strict=True)
        counts[node] = STEPS + sum(1 + iterations + (not stopped) for iterations, stopped in per_step)
        assert runs[node].unet_evaluations == counts[node]
    early = runs["9"].optimisation
    print(
        f"UNet evaluations ({STEPS} steps × {INNER} inner): worst case {worst}, ε {NOTEBOOK_EPSILON}: {counts['5']}, "
        f"ε {MODEL_SCALE_EPSILON}: {counts['9']} (iterations {early.iterations}); "
        f"plain DDIM {runs['7'].unet_evaluations}"
    )
    assert any(early.early_stopped) and counts["9"] < worst and runs["7"].unet_evaluations == STEPS
    for step, (stopped, loss) in enumerate(zip(early.early_stopped, early.losses, strict=True)):
        assert not stopped or loss < MODEL_SCALE_EPSILON + 1e-3 * step / STEPS


def test_inversion_under_inference_mode_leaves_the_model_as_it_was(runs, loaded):
    model = loaded["model"]
    assert all(is_inference for _, is_inference in loaded["weights"]), "the test needs inference-tensor weights"
    assert all(p.grad is None for p in model.model.diffusion_model.parameters()), "a weight received a gradient"
    assert unet_state(model) == loaded["weights"] and repr(model.model_options) == loaded["options"]
    assert torch.equal(sample(model, *loaded["conds"]), loaded["before"])


@pytest.mark.slow
def test_interrupt_stops_the_inversion_and_leaves_nothing_half_done(run_graph, loaded, monkeypatch):
    import comfy.model_management
    import comfy.utils

    hook = comfy.utils.PROGRESS_BAR_HOOK
    updates = []

    def interrupt_at_second_step(value, total, preview, prompt_id=None, node_id=None):
        updates.append(value)
        if len(updates) == 2:
            comfy.model_management.interrupt_current_processing(True)
        return hook(value, total, preview, prompt_id, node_id)

    prompt = {**base_graph(), "5": inversion_node(steps=3, inner_steps=2)}
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", interrupt_at_second_step)
    with pytest.raises(PromptFailed, match="node 5 .* was interrupted"):
        run_graph(prompt, outputs=["5"])
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", hook)
    # Later ComfyUIs throttle the progress bar's reports between the first and the last: the second report may
    # carry any value below the total, so the run was stopped part-way whichever value it was.
    assert len(updates) == 2 and updates[0] == 1 and updates[1] < 6
    assert not comfy.model_management.processing_interrupted()
    assert unet_state(loaded["model"]) == loaded["weights"]
    assert repr(loaded["model"].model_options) == loaded["options"]

    inversion = run_graph(prompt, outputs=["5"])["5"][0]
    progress = [data["value"] for event, data in last_events() if event == "progress" and data["node"] == "5"]
    assert progress[0] == 1 and progress[-1] == 6, "the interrupted node's output must not have been cached"
    assert progress == sorted(set(progress))
    assert len(inversion.null_embeddings) == 3


def test_steps_below_one_are_refused_by_validation_naming_the_input(run_graph, loaded):
    with pytest.raises(PromptFailed, match="steps"):
        run_graph({**base_graph(), "5": inversion_node(steps=0)}, outputs=["5"])


def test_a_v_prediction_model_is_refused_naming_the_model_input(run_graph, loaded):
    prompt = {
        **base_graph(),
        "10": {
            "class_type": "ModelSamplingDiscrete",
            "inputs": {"model": ["1", 0], "sampling": "v_prediction", "zsnr": False},
        },
        "5": inversion_node(model=["10", 0]),
    }
    with pytest.raises(PromptFailed, match=r"model: DDIM inversion needs an ε-prediction model.*V_PREDICTION"):
        run_graph(prompt, outputs=["5"])


def invert_directly(loaded, **changes):
    from precise_edit.nodes.s2edit.nodes_edit import NullTextInversion

    positive, negative = loaded["conds"]
    inputs = dict(
        model=loaded["model"],
        positive=positive,
        negative=negative,
        latent={"samples": source_latent()},
        steps=STEPS,
        guidance=GUIDANCE,
        inner_steps=INNER,
        epsilon=NOTEBOOK_EPSILON,
        mode=NULL_TEXT,
    )
    inputs.update(changes)
    with torch.inference_mode():
        return NullTextInversion.execute(**inputs)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"positive": []}, "positive: the conditioning is empty"),
        ({"negative": [[torch.zeros(1, 77, 2048), {}]]}, "negative: text embeddings of width 2048 do not fit"),
        ({"latent": {"samples": torch.zeros(2, 4, *LATENT_HW)}}, "latent: inversion works on one image at a time"),
        ({"latent": {"samples": torch.zeros(1, 16, *LATENT_HW)}}, "latent: 16 channels, this model's latents have 4"),
        ({"latent": {"samples": torch.full((1, 4, *LATENT_HW), float("nan"))}}, "latent: the latent contains NaN"),
        ({"steps": 0}, "steps: at least 1 step is needed"),
        ({"mode": "exact"}, "mode: 'exact' is not one of null_text, negative_prompt, plain_ddim"),
    ],
)
def test_bad_inputs_give_errors_naming_the_input(loaded, changes, message):
    with pytest.raises(ValueError, match=message):
        invert_directly(loaded, **changes)


def test_null_text_mode_needs_a_single_negative_conditioning(loaded):
    negative = loaded["conds"][1]
    with pytest.raises(ValueError, match="negative: null-text inversion optimises one null-text embedding.* 2 entries"):
        invert_directly(loaded, negative=negative + negative)


def test_reconstruct_refuses_a_model_with_another_schedule(run_graph, loaded):
    prompt = {
        **base_graph(),
        "5": inversion_node(PLAIN_DDIM, steps=1),
        "10": {"class_type": "ModelSamplingDiscrete", "inputs": {"model": ["1", 0], "sampling": "eps", "zsnr": True}},
        "6": reconstruct_node("5", model=["10", 0]),
    }
    with pytest.raises(PromptFailed, match="model: its noise schedule differs"):
        run_graph(prompt, outputs=["6"])
