"""Null-Text Inversion and Inversion Reconstruct on flow models: the tiny SD1.5 UNet sampled as a flow model by
ComfyUI's own ModelSamplingSD3 / ModelSamplingFlux nodes (CONST sampling, the σ tables and shifts of SD3 and Flux),
run by ComfyUI's executor. The schedule is ComfyUI's ``simple`` scheduler; the replay is ComfyUI's ``euler`` sampler
from the inverted noise; the round trip is far closer than sampling from fresh noise; the fingerprint checks refuse
another kind of model, another shift and null-text optimisation."""

import pytest
import torch
from attention_helpers import LATENT_HW, PROMPT, SD15, encode

from harness.errors import PromptFailed

SOURCE_FILE = "pe_flow_inversion_source.latent"
NULL_PROMPT = "a photo of a cat wearing a blue hat"
GUIDED, PLAIN, NULL_TEXT, NEGATIVE = "guided", "plain_ddim", "null_text", "negative_prompt"
STEPS, GUIDANCE = 8, 3.0
SD3_SHIFT = 3.0


def source_latent() -> torch.Tensor:
    """A latent of unit variance in model space (SD1.x's × 0.18215), as VAE Encode gives."""
    return torch.randn(1, 4, *LATENT_HW, generator=torch.Generator().manual_seed(11)) / 0.18215


@pytest.fixture(scope="module")
def source_file(comfy):
    import folder_paths
    import safetensors.torch

    path = f"{folder_paths.get_input_directory()}/{SOURCE_FILE}"
    safetensors.torch.save_file({"latent_tensor": source_latent(), "latent_format_version_0": torch.tensor([])}, path)
    return SOURCE_FILE


def base_graph(shift: float = SD3_SHIFT) -> dict:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": SD15}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": PROMPT}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": NULL_PROMPT}},
        "4": {"class_type": "LoadLatent", "inputs": {"latent": SOURCE_FILE}},
        "10": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["1", 0], "shift": shift}},
        "11": {
            "class_type": "ModelSamplingFlux",
            "inputs": {"model": ["1", 0], "max_shift": 1.15, "base_shift": 0.5, "width": 96, "height": 64},
        },
    }


def inversion_node(mode: str = GUIDED, model: str = "10", **inputs) -> dict:
    settings = dict(steps=STEPS, guidance=GUIDANCE, inner_steps=2, epsilon=1e-5, mode=mode)
    links = dict(model=[model, 0], positive=["2", 0], negative=["3", 0], latent=["4", 0])
    return {"class_type": "PreciseEdit_NullTextInversion", "inputs": {**links, **settings, **inputs}}


def reconstruct_node(inversion: str, model: str = "10") -> dict:
    inputs = {"model": [model, 0], "inversion": [inversion, 0], "positive": ["2", 0]}
    return {"class_type": "PreciseEdit_InversionReconstruct", "inputs": inputs}


@pytest.fixture(scope="module")
def runs(run_graph, tiny_models, source_file):
    """Guided, plain and negative-prompt inversions on the SD3-sampled model and a guided one on the Flux-sampled
    model, each reconstructed, in one prompt."""
    prompt = {
        **base_graph(),
        "20": inversion_node(GUIDED),
        "21": reconstruct_node("20"),
        "22": inversion_node(PLAIN),
        "23": reconstruct_node("22"),
        "24": inversion_node(NEGATIVE),
        "25": reconstruct_node("24"),
        "26": inversion_node(GUIDED, model="11", guidance=1.0),
        "27": reconstruct_node("26", model="11"),
    }
    nodes = ["1", "4", "10", "11", "20", "21", "22", "23", "24", "25", "26", "27"]
    outputs = run_graph(prompt, outputs=nodes)
    return {node: outputs[node][0] for node in nodes} | {"clip": outputs["1"][1]}


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).square().mean())


def euler_sample(model, inversion, positive, negative, noise: torch.Tensor, cfg: float) -> torch.Tensor:
    """ComfyUI's own KSampler (euler, simple) from ``noise`` (LATENT convention) at the inversion's step count."""
    import comfy.sample

    model_noise = model.model.latent_format.process_in(noise)
    latent = torch.zeros_like(noise)
    steps = inversion.schedule.steps
    return comfy.sample.sample(
        model, model_noise, steps, cfg, "euler", "simple", positive, negative, latent, disable_pbar=True, seed=0
    )


@pytest.mark.parametrize("model_node", ["10", "11"])
def test_the_schedule_is_comfyuis_simple_scheduler_on_the_models_shift(runs, model_node):
    import comfy.samplers

    model = runs[model_node]
    inversion = runs["20"] if model_node == "10" else runs["26"]
    expected = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "simple", STEPS)
    assert inversion.flow
    torch.testing.assert_close(inversion.schedule.sampling_sigmas(), expected.float(), rtol=0, atol=0)


def test_the_replay_is_comfyuis_euler_sampler_from_the_inverted_noise(runs):
    clip = runs["clip"]
    positive, negative = encode(clip, PROMPT), encode(clip, NULL_PROMPT)
    inversion = runs["20"]
    ours = runs["21"]["samples"]
    theirs = euler_sample(runs["10"], inversion, positive, negative, inversion.noise, GUIDANCE)
    torch.testing.assert_close(ours, theirs, atol=1e-4 * float(theirs.abs().max()), rtol=0)


def test_invert_then_sample_reconstructs_far_better_than_sampling_from_fresh_noise(runs):
    clip = runs["clip"]
    positive, negative = encode(clip, PROMPT), encode(clip, NULL_PROMPT)
    source = runs["4"]["samples"]
    fresh = torch.randn(source.shape, generator=torch.Generator().manual_seed(3)) / 0.18215
    baseline = mse(euler_sample(runs["10"], runs["20"], positive, negative, fresh, GUIDANCE), source)
    errors = {name: mse(runs[node]["samples"], source) for name, node in (("guided", "21"), ("plain", "23"))}
    errors["negative_prompt"] = mse(runs["25"]["samples"], source)
    errors["flux_guidance_1"] = mse(runs["27"]["samples"], source)
    print(
        f"flow round trip, {STEPS} steps, MSE in latent units (source variance {source.var():.1f}): "
        + ", ".join(f"{name} {value:.3g}" for name, value in errors.items())
        + f"; fresh noise {baseline:.3g}"
    )
    for name in ("guided", "negative_prompt", "flux_guidance_1"):
        assert errors[name] < baseline / 20, name
    assert errors["guided"] < errors["plain"], "inverting without the replay's guidance should drift more"


def test_guided_inversion_counts_both_predictions_and_unguided_modes_one(runs):
    assert runs["20"].unet_evaluations == 2 * STEPS
    assert runs["22"].unet_evaluations == STEPS and runs["26"].unet_evaluations == STEPS
    assert runs["20"].optimisation is None and runs["20"].mode == GUIDED


def test_null_text_optimisation_is_refused_on_a_flow_model(run_graph, runs):
    with pytest.raises(PromptFailed, match="mode: null-text optimisation is for ε-prediction models.*guided"):
        run_graph({**base_graph(), "20": inversion_node(NULL_TEXT)}, outputs=["20"])


@pytest.mark.parametrize(
    ("inverting", "replaying", "message"),
    [
        ("10", "1", "model: the inversion was made with a flow model, this is an ε-prediction model"),
        ("10", "12", r"model: its noise schedule \(a flow model's shift"),
        ("10", "11", r"model: its noise schedule \(a flow model's shift"),
    ],
)
def test_a_replay_on_another_kind_of_model_or_shift_is_refused(run_graph, runs, inverting, replaying, message):
    prompt = {
        **base_graph(),
        "12": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["1", 0], "shift": 2.0}},
        "20": inversion_node(GUIDED, model=inverting, steps=2),
        "21": reconstruct_node("20", model=replaying),
    }
    with pytest.raises(PromptFailed, match=message):
        run_graph(prompt, outputs=["21"])


def test_a_flow_model_replaying_an_epsilon_inversion_is_refused(run_graph, runs):
    prompt = {**base_graph(), "20": inversion_node(PLAIN, model="1", steps=2), "21": reconstruct_node("20")}
    with pytest.raises(PromptFailed, match="model: the inversion was made with an ε-prediction model, this is a flow"):
        run_graph(prompt, outputs=["21"])


def test_a_v_prediction_model_is_refused_naming_both_accepted_kinds(run_graph, runs):
    prompt = {
        **base_graph(),
        "12": {
            "class_type": "ModelSamplingDiscrete",
            "inputs": {"model": ["1", 0], "sampling": "v_prediction", "zsnr": False},
        },
        "20": inversion_node(GUIDED, model="12"),
    }
    with pytest.raises(PromptFailed, match=r"ε-prediction model.*or a flow model.*V_PREDICTION"):
        run_graph(prompt, outputs=["20"])


def test_guided_mode_also_serves_epsilon_models_and_drifts_less_than_plain_ddim(run_graph, runs):
    prompt = {
        **base_graph(),
        "30": inversion_node(GUIDED, model="1", steps=5, guidance=7.5),
        "31": reconstruct_node("30", model="1"),
        "32": inversion_node(PLAIN, model="1", steps=5, guidance=7.5),
        "33": reconstruct_node("32", model="1"),
    }
    outputs = run_graph(prompt, outputs=["4", "30", "31", "33"])
    source = outputs["4"][0]["samples"]
    guided, plain = mse(outputs["31"][0]["samples"], source), mse(outputs["33"][0]["samples"], source)
    print(f"ε-model (tiny SD1.5), 5 DDIM steps at w 7.5: round-trip MSE guided {guided:.3g}, plain DDIM {plain:.3g}")
    assert not outputs["30"][0].flow and outputs["30"][0].unet_evaluations == 10
    assert guided < plain
