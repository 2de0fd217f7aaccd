"""The DeltaEdit nodes inside ComfyUI: loaders, direction, trainer, apply, and their errors.

A tiny random transformers CLIPModel is saved with ``save_pretrained`` into the fixture's models/clip_joint; a
ComfyUI CLIP_VISION is built from the same image tower (stock CLIPVisionLoader only detects full-size models), so
the conditioning space is that CLIP's own image space and the straightforward baseline is defined too.
"""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from delta_helpers import image_batch, one_thread, save_tiny_clip, tiny_clip, tiny_clip_vision, write_images

from harness.errors import PromptFailed

JOINT = "tiny-joint-clip/model.safetensors"
OTHER_JOINT = "other-joint-clip/model.safetensors"


@pytest.fixture(scope="module")
def delta(comfy, tmp_path_factory):
    import folder_paths

    folders = {name: str(comfy.models_dir / name) for name in ("clip_joint", "delta_mappers")}
    added = {name: path for name, path in folders.items() if path not in folder_paths.get_folder_paths(name)}
    for name, path in folders.items():
        Path(path).mkdir(parents=True, exist_ok=True)
        folder_paths.add_model_folder_path(name, path, is_default=True)
    model = save_tiny_clip(comfy.models_dir / "clip_joint" / "tiny-joint-clip", seed=0)
    save_tiny_clip(comfy.models_dir / "clip_joint" / "other-joint-clip", seed=1)
    work = tmp_path_factory.mktemp("delta")
    clip_vision = tiny_clip_vision(model, work)
    write_images(work / "train", 6)
    yield SimpleNamespace(models=comfy.models_dir, work=work, clip_vision=clip_vision)
    # leave the in-process lists as they were (the harness may register these folders itself) for tests comparing
    # them with the server's
    for name, path in added.items():
        folder_paths.folder_names_and_paths[name][0].remove(path)
        folder_paths.filename_list_cache.pop(name, None)


def run(node_class, **inputs):
    """Execute a node as ComfyUI does: under inference mode, returning its outputs."""
    with torch.inference_mode():
        return node_class.execute(**inputs).args


def load_joint(name: str = JOINT):
    from precise_edit.nodes.deltaedit.nodes_direction import JointCLIPLoader

    return run(JointCLIPLoader, clip_name=name)[0]


def direction_prompt(source: str, target: str, **extra) -> dict:
    return {
        "1": {"class_type": "PreciseEdit_JointCLIPLoader", "inputs": {"clip_name": JOINT}},
        "2": {
            "class_type": "PreciseEdit_CLIPDeltaDirection",
            "inputs": {
                "joint_clip": ["1", 0],
                "mode": "texts",
                "source_text": source,
                "target_text": target,
                "prompt_templates": True,
                **extra,
            },
        },
    }


def train(delta, joint, steps=30, prefix="test_mapper", **inputs):
    from precise_edit.nodes.deltaedit.nodes_mapper import DeltaMapperTrainer

    arguments = {
        "joint_clip": joint,
        "clip_vision": delta.clip_vision,
        "folder": str(delta.work / "train"),
        "steps": steps,
        "batch_size": 8,
        "learning_rate": 0.5,
        "seed": 3,
        "filename_prefix": prefix,
        **inputs,
    }
    with one_thread():
        return run(DeltaMapperTrainer, **arguments)


@pytest.fixture(scope="module")
def trained(delta):
    joint = load_joint()
    before = set((delta.models / "delta_mappers").glob("*.safetensors"))
    mapper, loss = train(delta, joint)
    saved = sorted(set((delta.models / "delta_mappers").glob("*.safetensors")) - before)
    return SimpleNamespace(joint=joint, mapper=mapper, loss=loss, saved=saved)


def test_the_direction_node_computes_the_templated_text_delta_of_the_loaded_clip(delta, run_graph):
    from precise_edit.core.deltaedit.clip_delta import text_direction

    outputs = run_graph(direction_prompt("face", "face with smile"), outputs=["1", "2"])
    joint, direction = outputs["1"][0], outputs["2"][0]
    assert joint.dim == 16 and joint.name == JOINT
    expected = text_direction(
        joint.joint.encode_texts, "face", "face with smile", use_templates=True, clip_fingerprint=joint.fingerprint
    )
    torch.testing.assert_close(direction.raw, expected.raw)
    assert direction.clip_fingerprint == joint.fingerprint and direction.kind == "text"


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        ("face", "face", "identical"),
        ("", "face with smile", "source text is empty"),
        ("face", " ", "target text is empty"),
        # CLIP's tokenizer lower-cases: two different strings, one embedding, Δt = 0
        ("Face", "face", "direction from 'Face' to 'face' is zero"),
    ],
)
def test_identical_or_empty_texts_fail_the_node_with_a_clear_message(delta, run_graph, source, target, message):
    with pytest.raises(PromptFailed, match=message) as error:
        run_graph(direction_prompt(source, target), outputs=["2"])
    assert "nan" not in str(error.value).lower()


def test_image_mode_averages_each_batch_and_needs_both_images(delta):
    from precise_edit.nodes.deltaedit.nodes_direction import CLIPDeltaDirection

    joint = load_joint()
    images = image_batch(4, seed=5)
    base = {"joint_clip": joint, "mode": "images", "source_text": "", "target_text": "", "prompt_templates": True}
    direction = run(CLIPDeltaDirection, **base, source_image=images[:2], target_image=images[2:])[0]
    unit = F.normalize(joint.encode_images(images), dim=1)
    expected = F.normalize(unit[2:].mean(0), dim=0) - F.normalize(unit[:2].mean(0), dim=0)
    torch.testing.assert_close(direction.raw, expected)
    assert direction.kind == "image"
    with pytest.raises(ValueError, match="needs the target_image input"):
        run(CLIPDeltaDirection, **base, source_image=images[:2])


def test_a_missing_clip_file_is_named(delta):
    with pytest.raises(FileNotFoundError, match="'nothing.safetensors' is not in models/clip_joint"):
        load_joint("nothing.safetensors")


def test_the_trainer_saves_a_mapper_the_loader_reads_back(delta, trained, run_graph):
    assert [p.name for p in trained.saved] == ["test_mapper_00001.safetensors"]
    assert len(trained.loss["loss"]) == 30 and all(v == v for v in trained.loss["loss"])
    model = trained.mapper
    assert (model.target_dim, model.clip_dim) == (16, 16) and model.training["images"] == 6
    assert model.clip_fingerprint == trained.joint.fingerprint
    outputs = run_graph(
        {"1": {"class_type": "PreciseEdit_DeltaMapperLoader", "inputs": {"mapper_name": trained.saved[0].name}}},
        outputs=["1"],
    )
    loaded = outputs["1"][0]
    for (name, ours), theirs in zip(
        model.mapper.state_dict().items(), loaded.mapper.state_dict().values(), strict=True
    ):
        assert torch.equal(ours, theirs), name
    torch.testing.assert_close(loaded.relevance, model.relevance)


def test_a_second_run_on_the_same_images_encodes_nothing(delta, trained, monkeypatch):
    from precise_edit.nodes.deltaedit import delta_training_data

    calls = []
    original = delta_training_data.JointClipModel.encode_images
    monkeypatch.setattr(
        delta_training_data.JointClipModel,
        "encode_images",
        lambda self, images: calls.append(images.shape[0]) or original(self, images),
    )
    data = delta_training_data.training_embeddings(trained.joint, delta.clip_vision, str(delta.work / "train"), None)
    assert data.encoded == 0 and calls == [] and data.codes.shape == (6, 16)
    extra = image_batch(2, seed=9)
    data = delta_training_data.training_embeddings(trained.joint, delta.clip_vision, str(delta.work / "train"), extra)
    assert data.encoded == 2 and calls == [1, 1] and data.names[-2:] == ["images[0]", "images[1]"]


def test_training_shows_progress_with_loss_previews_and_stops_on_interrupt(delta, trained):
    import comfy.model_management
    import comfy.utils

    updates = []

    def hook(value, total, preview, prompt_id=None, node_id=None):
        comfy.model_management.throw_exception_if_processing_interrupted()
        updates.append((value, total, preview))
        if value == 5:
            comfy.model_management.interrupt_current_processing(True)

    previous = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(hook)
    before = set((delta.models / "delta_mappers").glob("*.safetensors"))
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            train(delta, trained.joint, steps=40, prefix="interrupted")
    finally:
        comfy.model_management.interrupt_current_processing(False)
        comfy.utils.set_progress_bar_global_hook(previous)
    assert [value for value, _, _ in updates] == [1, 2, 3, 4, 5]
    assert updates[0][2][0] == "JPEG" and updates[0][2][1].size == (320, 160)
    assert set((delta.models / "delta_mappers").glob("*.safetensors")) == before


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (["one.png"], "got 1"),
        (["a.png", "b.png", "notes.md"], "not images: notes.md"),
        (["a.png", "b.png", "broken.jpg"], "broken.jpg in .* could not be read as an image"),
    ],
)
def test_unusable_training_folders_are_refused_before_training(delta, trained, tmp_path, files, message):
    write_images(tmp_path, 2)
    sources = iter(sorted(tmp_path.glob("*.png")))
    for name in files:
        target = tmp_path / name
        if name.endswith(".png"):
            next(sources).rename(target)
        else:
            target.write_text("not an image")
    for leftover in sources:
        leftover.unlink()
    with pytest.raises(ValueError, match=message):
        train(delta, trained.joint, folder=str(tmp_path))


def test_a_folder_that_does_not_exist_is_named(delta, trained):
    with pytest.raises(ValueError, match="no such folder"):
        train(delta, trained.joint, folder="no/such/folder")


DEFAULT_INPUTS = {"method": "delta_mapper", "strength": 1.0, "threshold": 0.03}


def fixture_inputs(delta, trained, direction) -> dict:
    return {
        "delta": direction,
        "delta_mapper": trained.mapper,
        "joint_clip": trained.joint,
        "clip_vision": delta.clip_vision,
        "image": image_batch(2, seed=11),
    }


def apply_outputs(delta, trained, direction, **inputs) -> tuple:
    """Apply DeltaEdit's outputs (CLIP_VISION_OUTPUT, CHANNELS_KEPT); the absolute threshold 0 unless given."""
    from precise_edit.nodes.deltaedit.nodes_direction import ApplyDeltaEdit

    arguments = {
        **DEFAULT_INPUTS,
        **fixture_inputs(delta, trained, direction),
        "threshold": 0.0,
        "threshold_mode": "absolute",
        **inputs,
    }
    return run(ApplyDeltaEdit, **arguments)


def apply(delta, trained, direction, **inputs):
    return apply_outputs(delta, trained, direction, **inputs)[0]


@pytest.fixture(scope="module")
def smile(trained):
    from precise_edit.core.deltaedit.clip_delta import text_direction

    with torch.inference_mode():
        return text_direction(
            trained.joint.encode_texts,
            "face",
            "face with smile",
            use_templates=True,
            clip_fingerprint=trained.joint.fingerprint,
        )


def test_the_edit_moves_image_embeds_by_the_mapper_prediction_and_keeps_hidden_states(delta, trained, smile):
    from precise_edit.core.deltaedit.delta_edit import predict_delta

    images = image_batch(2, seed=11)
    with torch.inference_mode():
        source = delta.clip_vision.encode_image(images, crop=True)
        expected = predict_delta(trained.mapper, source.image_embeds, trained.joint.encode_images(images), smile)
    out = apply(delta, trained, smile, strength=0.5)
    torch.testing.assert_close(out.image_embeds, source.image_embeds + 0.5 * expected)
    assert torch.equal(out.penultimate_hidden_states, source.penultimate_hidden_states)
    assert float((out.image_embeds - source.image_embeds).abs().max()) > 0


def test_strength_zero_and_a_threshold_above_every_relevance_leave_the_embedding_unchanged(delta, trained, smile):
    with torch.inference_mode():
        source = delta.clip_vision.encode_image(image_batch(2, seed=11), crop=True)
    assert torch.equal(apply(delta, trained, smile, strength=0.0).image_embeds, source.image_embeds)
    assert torch.equal(apply(delta, trained, smile, threshold=1.0).image_embeds, source.image_embeds)
    partial = apply(delta, trained, smile, threshold=0.03).image_embeds - source.image_embeds
    relevant = (trained.mapper.relevance @ smile.raw).abs() >= 0.03
    assert torch.equal(partial[:, ~relevant], torch.zeros_like(partial[:, ~relevant]))


def test_by_default_channels_a_quarter_as_relevant_as_the_top_one_are_edited_and_their_fraction_reported(
    delta, trained, smile, monkeypatch
):
    from precise_edit.nodes.deltaedit import nodes_direction as apply_delta_edit

    defaults = {i.id: getattr(i, "default", None) for i in apply_delta_edit.ApplyDeltaEdit.GET_SCHEMA().inputs}
    assert (defaults["threshold_mode"], defaults["relative_threshold"], defaults["threshold"]) == (
        "relative",
        0.25,
        0.03,
    )
    shown = []
    monkeypatch.setattr(apply_delta_edit, "show_on_node", shown.append)
    images = image_batch(2, seed=11)
    with torch.inference_mode():
        source = delta.clip_vision.encode_image(images, crop=True)
    # a prompt saved before threshold_mode existed: the node's defaults (relative) apply, its threshold is kept
    inputs = {k: v for k, v in DEFAULT_INPUTS.items() if not k.startswith(("threshold_mode", "relative"))}
    out, kept = run(apply_delta_edit.ApplyDeltaEdit, **inputs, **fixture_inputs(delta, trained, smile))
    change = out.image_embeds - source.image_embeds
    scores = (trained.mapper.relevance @ smile.raw).abs()
    relevant = scores >= 0.25 * scores.max()
    # the tiny 16-d joint CLIP: ‖Δt‖ = 0.27, scores 0.0003–0.048; ρ = 0.25 keeps 13 of 16, τ = 0.03 keeps 3
    assert kept == float(relevant.float().mean()) == 13 / 16
    assert torch.equal(change[:, ~relevant], torch.zeros_like(change[:, ~relevant]))
    assert float(change.norm(dim=-1).min()) > 1e-3
    paper, paper_kept = apply_outputs(delta, trained, smile, threshold=0.03)
    assert paper_kept == 3 / 16
    assert float((paper.image_embeds - source.image_embeds).norm()) < float(change.norm())
    assert shown[0].startswith("DeltaEdit: 13 of 16 channels kept (81.2%); edit length ")
    assert apply_outputs(delta, trained, smile, strength=0.0)[1] == 0.0
    assert apply_outputs(delta, trained, smile, method="straightforward")[1] == 1.0


def test_the_report_is_shown_under_the_executing_node(comfy, monkeypatch):
    import server
    from comfy_execution.utils import CurrentNodeContext

    from precise_edit.nodes.common.node_text import show_on_node

    sent = []
    stub = SimpleNamespace(send_progress_text=lambda text, node_id: sent.append((text, node_id)))
    monkeypatch.setattr(server.PromptServer, "instance", stub, raising=False)
    with CurrentNodeContext("prompt", "7"):
        show_on_node("DeltaEdit: 13 of 16 channels kept")
    show_on_node("outside a prompt: logged only")
    assert sent == [("DeltaEdit: 13 of 16 channels kept", "7")]


def test_an_unknown_threshold_mode_is_named(delta, trained, smile):
    with pytest.raises(
        ValueError, match="threshold_mode: expected one of \\['relative', 'absolute'\\], got 'quantile'"
    ):
        apply(delta, trained, smile, threshold_mode="quantile")


def test_the_straightforward_baseline_edits_a_given_clip_vision_output(delta, trained, smile):
    with torch.inference_mode():
        source = delta.clip_vision.encode_image(image_batch(1, seed=2), crop=True)
    out = apply(delta, trained, smile, method="straightforward", clip_vision_output=source, image=None)
    expected = source.image_embeds + source.image_embeds.norm(dim=-1, keepdim=True) * smile.raw
    torch.testing.assert_close(out.image_embeds, expected)


def test_the_edited_output_conditions_the_stock_unclip_path(delta, trained, smile):
    import comfy.model_base
    from comfy.ldm.modules.encoders.noise_aug_modules import CLIPEmbeddingNoiseAugmentation

    import nodes

    augmentor = CLIPEmbeddingNoiseAugmentation(
        noise_schedule_config={"timesteps": 1000, "beta_schedule": "squaredcos_cap_v2"}, timestep_dim=16
    )

    def adm(output) -> torch.Tensor:
        conditioning = nodes.unCLIPConditioning().apply_adm([[torch.zeros(1, 77, 8), {}]], output, 1.0, 0.0)[0]
        return comfy.model_base.unclip_adm(conditioning[0][1]["unclip_conditioning"], "cpu", augmentor, seed=0)

    image = image_batch(1, seed=11)
    with torch.inference_mode():
        source = delta.clip_vision.encode_image(image, crop=True)
    edited, unedited = apply(delta, trained, smile, image=image), apply(delta, trained, smile, image=image, strength=0)
    change = edited.image_embeds - source.image_embeds
    assert float(change.norm()) > 1e-3
    plain, moved = adm(unedited), adm(edited)
    assert moved.shape == plain.shape == (1, 32) and torch.isfinite(moved).all()
    assert torch.equal(plain, adm(source))
    # noise level 0 with one seed: the ADM's embedding half moves by √ᾱ₀ · Δs ≈ Δs, its noise-level half not at all
    torch.testing.assert_close(moved[:, :16] - plain[:, :16], change, atol=1e-4, rtol=1e-3)
    assert torch.equal(moved[:, 16:], plain[:, 16:])


def test_a_mapper_is_refused_with_another_joint_clip_or_a_direction_of_another_clip(delta, trained, smile):
    from precise_edit.core.deltaedit.clip_delta import text_direction

    other = load_joint(OTHER_JOINT)
    with pytest.raises(ValueError, match="not the one this Delta Mapper was trained with"):
        apply(delta, trained, smile, joint_clip=other)
    with torch.inference_mode():
        foreign = text_direction(
            other.encode_texts, "face", "face with smile", use_templates=True, clip_fingerprint=other.fingerprint
        )
    with pytest.raises(ValueError, match="delta was computed with another joint CLIP than the one the Delta Mapper"):
        apply(delta, trained, foreign)
    wide = type(smile)(
        raw=torch.ones(24) / 24,
        unit=torch.ones(24) / 24**0.5,
        source="a",
        target="b",
        kind="text",
        clip_fingerprint="elsewhere",
    )
    with pytest.raises(ValueError, match="24-d direction but the Delta Mapper was trained with a 16-d joint CLIP"):
        apply(delta, trained, wide)


def test_mismatched_spaces_and_missing_inputs_are_named(delta, trained, smile):
    wide_vision = tiny_clip_vision(tiny_clip(seed=4, projection=24), delta.work)
    with pytest.raises(ValueError, match="trained for another CLIP vision model"):
        apply(delta, trained, smile, clip_vision=wide_vision)
    with pytest.raises(ValueError, match="same CLIP for both"):
        apply(delta, trained, smile, method="straightforward", clip_vision=wide_vision)
    with pytest.raises(ValueError, match="needs delta_mapper connected"):
        apply(delta, trained, smile, delta_mapper=None)
    with pytest.raises(ValueError, match="connect clip_vision_output, or clip_vision and image"):
        apply(delta, trained, smile, clip_vision=None)
