"""MCDM paired data: the canvas guider against eq. 2 computed branch by branch, the pair split and folder layout,
and pairs folders that cannot be used (missing files, malformed prompt.json lines, odd and mismatched sizes)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from attention_helpers import encode
from mcdm_synthetic import SOURCE_PROMPT, TARGET_PROMPT, make_pairs, write_pairs_folder
from PIL import Image

from precise_edit.core.mcdm.composable_canvas import CanvasStrengths, split_canvas
from precise_edit.core.mcdm.pairs_folder import PairsFolderError, append_pairs, load_pairs, read_pairs

STRENGTHS = CanvasStrengths(shared=0.7, source=0.6, target=0.4)  # W ≠ 1, so the (1 − W)·z term is exercised
CFG, STEPS = 4.0, 2
PROMPTS = {
    "shared": "the same cat on the left and right",
    "source": "a cat, red hat",
    "target": "a cat, blue hat",
    "negative": "",
}


def canvas_guider(model, conds: dict):
    from precise_edit.nodes.mcdm.nodes_data import PairedCanvasGuider

    strengths = dict(shared_strength=STRENGTHS.shared, source_strength=STRENGTHS.source)
    return PairedCanvasGuider.execute(model, **conds, **strengths, target_strength=STRENGTHS.target, cfg=CFG).result[0]


def branch_by_branch_guider(model, conds: dict):
    """Eq. 2 written out: one model call per conditioning, ε from each x̂0, ε̃ per branch, halves by slicing."""
    import comfy.samplers

    class Reference(comfy.samplers.CFGGuider):
        def predict_noise(self, x, timestep, model_options=None, seed=None):
            sigma = timestep.view(-1, 1, 1, 1)
            eps = {}
            for name in ("negative", "shared", "source", "target"):
                (denoised,) = comfy.samplers.calc_cond_batch(
                    self.inner_model, [self.conds[name]], x, timestep, model_options or {}
                )
                eps[name] = (x - denoised) / sigma
            guided = {k: eps["negative"] + CFG * (eps[k] - eps["negative"]) for k in ("shared", "source", "target")}
            half = x.shape[-1] // 2
            combined = STRENGTHS.shared * guided["shared"]
            combined[..., :half] += STRENGTHS.source * guided["source"][..., :half]
            combined[..., half:] += STRENGTHS.target * guided["target"][..., half:]
            return x - sigma * combined

    guider = Reference(model)
    guider.inner_set_conds(conds)
    return guider


def sample_with(guider, model, width: int = 16) -> torch.Tensor:
    import comfy.samplers

    latent = torch.zeros(1, 4, 8, width)
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(3))
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "normal", STEPS)
    sampler = comfy.samplers.sampler_object("euler")
    return guider.sample(noise, latent, sampler, sigmas, disable_pbar=True, seed=3)


@pytest.fixture(scope="module")
def conds(sd15) -> dict:
    return {name: encode(sd15.clip, text) for name, text in PROMPTS.items()}


@pytest.mark.slow
def test_canvas_guider_equals_eq2_branch_by_branch_in_one_batched_call(sd15, conds):
    calls = []
    counted = sd15.model.clone()
    counted.set_model_unet_function_wrapper(
        lambda apply, args: calls.append(args["input"].shape[0]) or apply(args["input"], args["timestep"], **args["c"])
    )
    ours = sample_with(canvas_guider(counted, conds), counted)
    assert calls == [4] * STEPS, "the four conditionings must run as one batch per step"
    reference = sample_with(branch_by_branch_guider(sd15.model, conds), sd15.model)
    assert ours.shape == (1, 4, 8, 16)
    # fp32 batched vs one-by-one calls, and ε = (z − x̂0)/σ at σ ≈ 14 in the reference: agreement to ~1e-4 relative
    torch.testing.assert_close(ours, reference, rtol=1e-3, atol=2e-3)
    # the halves really are guided differently: the same run with swapped source/target prompts differs
    swapped = sample_with(
        canvas_guider(sd15.model, {**conds, "source": conds["target"], "target": conds["source"]}), sd15.model
    )
    assert (swapped - ours).abs().mean() > 0.2


def test_canvas_guider_refuses_a_canvas_that_cannot_be_halved(sd15, conds):
    with pytest.raises(ValueError, match="even width"):
        sample_with(canvas_guider(sd15.model, conds), sd15.model, width=15)


def test_generator_splits_the_canvas_and_writes_the_official_layout(comfy):
    from precise_edit.nodes.mcdm.nodes_data import PairedDataGenerator

    pairs = make_pairs(2, size=32, seed=5)
    canvas = torch.cat([pairs.sources, pairs.targets], dim=2)  # (2, 32, 64, 3): x = [x_A, x_B]
    folder = comfy.base_dir / "output" / "pairs_tests" / "layout"  # named relative to the output directory
    x_a, x_b = PairedDataGenerator.execute(canvas, "pairs_tests/layout", TARGET_PROMPT, SOURCE_PROMPT).result
    assert torch.equal(x_a, pairs.sources) and torch.equal(x_b, pairs.targets)
    PairedDataGenerator.execute(canvas[:1], "pairs_tests\\layout", "a man, santa claus costume", "a man")

    lines = (folder / "prompt.json").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {
            "source": "condition/00001.png",
            "target": "gt/00001.png",
            "prompt": TARGET_PROMPT,
            "source_prompt": SOURCE_PROMPT,
        },
        {
            "source": "condition/00002.png",
            "target": "gt/00002.png",
            "prompt": TARGET_PROMPT,
            "source_prompt": SOURCE_PROMPT,
        },
        {
            "source": "condition/00003.png",
            "target": "gt/00003.png",
            "prompt": "a man, santa claus costume",
            "source_prompt": "a man",
        },
    ]
    assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == sorted(
        ["prompt.json"] + [f"0000{i}.png" for i in (1, 2, 3)] * 2
    )
    written = np.asarray(Image.open(folder / "gt/00002.png"))
    assert written.shape == (32, 32, 3)
    assert np.array_equal(written, (pairs.targets[1] * 255).round().to(torch.uint8).numpy())
    data = load_pairs(folder)
    assert data.prompts[2] == "a man, santa claus costume" and data.source_prompts[:2] == [SOURCE_PROMPT] * 2
    assert (data.sources[:2] - pairs.sources).abs().max() <= 0.5 / 255 + 1e-6


def test_generator_refuses_a_canvas_whose_halves_are_not_vae_sized(comfy):
    from precise_edit.nodes.mcdm.nodes_data import PairedDataGenerator

    output = comfy.base_dir / "output"
    with pytest.raises(ValueError, match="images: .*even width"):
        PairedDataGenerator.execute(torch.zeros(1, 32, 63, 3), "pairs_tests/a", "p", "s")
    with pytest.raises(ValueError, match=r"36×32.*multiples of 8"):
        PairedDataGenerator.execute(torch.zeros(1, 32, 72, 3), "pairs_tests/b", "p", "s")
    assert not (output / "pairs_tests" / "a").exists() and not (output / "pairs_tests" / "b").exists()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_malformed_prompt_lines_are_reported_by_line_number_and_nothing_is_written(tmp_path):
    folder = write_pairs_folder(tmp_path / "pairs", make_pairs(2, size=16))
    good = (folder / "prompt.json").read_text().splitlines()
    (folder / "prompt.json").write_text(
        "\n".join(
            [
                good[0],
                '{"source": "condition/00002.png", "target": "gt/00002.png"',
                "",
                "[1, 2]",
                '{"source": "condition/00002.png", "target": 3, "prompt": "p"}',
                good[1],
            ]
        )
        + "\n"
    )
    before = snapshot(folder)
    with pytest.raises(PairsFolderError) as error:
        read_pairs(folder)
    message = str(error.value)
    assert "line 2: not valid JSON" in message
    assert "line 4: expected a JSON object" in message
    assert "line 5: missing or non-string target, source_prompt" in message
    assert "line 1" not in message and "line 6" not in message
    pairs = make_pairs(1, size=16, seed=9)
    with pytest.raises(PairsFolderError, match="line 2"):
        append_pairs(folder, pairs.sources, pairs.targets, prompt="p", source_prompt="s")
    assert snapshot(folder) == before


def test_missing_files_odd_and_mismatched_sizes_are_named(tmp_path):
    folder = write_pairs_folder(tmp_path / "pairs", make_pairs(4, size=16))
    (folder / "gt/00002.png").unlink()
    Image.new("RGB", (24, 16)).save(folder / "gt/00003.png")
    Image.new("RGB", (20, 20)).save(folder / "condition/00004.png")
    Image.new("RGB", (20, 20)).save(folder / "gt/00004.png")
    with (folder / "prompt.json").open("a") as handle:
        handle.write(json.dumps({"source": "../x.png", "target": "gt/00001.png", "prompt": "p", "source_prompt": "s"}))
    with pytest.raises(PairsFolderError) as error:
        read_pairs(folder)
    message = str(error.value)
    assert "line 2: target file gt/00002.png is missing" in message
    assert "line 3: condition/00003.png is 16×16 but gt/00003.png is 24×16" in message
    assert "line 4: condition/00004.png is 20×20: width and height must be multiples of 8" in message
    assert "line 5: source '../x.png' points outside the folder" in message
    with pytest.raises(PairsFolderError, match="prompt.json is missing"):
        read_pairs(tmp_path)


def test_pairs_of_different_sizes_cannot_be_batched(tmp_path):
    folder = write_pairs_folder(tmp_path / "pairs", make_pairs(1, size=16))
    other = make_pairs(1, size=24)
    append_pairs(folder, other.sources, other.targets, prompt="p", source_prompt="s")
    with pytest.raises(PairsFolderError, match=r"different sizes \(16×16 \(first on line 1\), 24×24"):
        read_pairs(folder)


def test_split_canvas_halves_exactly():
    canvas = torch.arange(2 * 3 * 8 * 1, dtype=torch.float32).view(2, 3, 8, 1).expand(-1, -1, -1, 3)
    left, right = split_canvas(canvas)
    assert torch.equal(torch.cat([left, right], dim=2), canvas) and left.shape == (2, 3, 4, 3)
