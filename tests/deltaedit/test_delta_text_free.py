"""Text-free learning (DeltaEdit's central claim) in the synthetic world of ``delta_world``.

The mapper is trained on image pairs only (codes and CLIP image embeddings), then asked for the code change of
unseen images under *text* directions it never saw. Its prediction must point where the true change points
(mean cosine ≥ 0.9), while the straightforward baseline, adding the text direction to the code, must not.
"""

import pytest
import torch
import torch.nn.functional as F
from delta_helpers import one_thread
from delta_world import DeltaWorld

from precise_edit.core.deltaedit.clip_delta import DeltaDirection
from precise_edit.core.deltaedit.delta_edit import DeltaEditModel, predict_delta, straightforward_delta
from precise_edit.core.deltaedit.delta_mapper import DeltaMapper, DeltaMapperConfig
from precise_edit.core.deltaedit.delta_relevance import estimate_relevance
from precise_edit.core.deltaedit.delta_training import code_scale, train_delta_mapper

TRAINING_IMAGES = 2000
STEPS = 500
BATCH = 256
LEARNING_RATE = 2.0


@pytest.fixture(scope="module")
def world_and_model():
    world = DeltaWorld(seed=1)
    codes, clip = world.training_images(TRAINING_IMAGES)
    config = DeltaMapperConfig.for_target(codes.shape[1], clip.shape[1])
    mapper = DeltaMapper(config, generator=torch.Generator().manual_seed(2))
    scale = code_scale(codes)
    with one_thread():
        losses = train_delta_mapper(
            mapper, codes, clip, steps=STEPS, batch_size=BATCH, learning_rate=LEARNING_RATE, seed=0, scale=scale
        )
    model = DeltaEditModel(
        mapper=mapper,
        code_scale=scale,
        relevance=estimate_relevance(codes, clip),
        clip_fingerprint="",
        target_fingerprint="",
    )
    return world, model, losses


def mean_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a, b, dim=-1).mean())


def predictions(model, edits, direction):
    return torch.cat(
        [
            predict_delta(model, edits.codes[i : i + 1], edits.clip[i : i + 1], direction(edits, i))
            for i in range(edits.codes.shape[0])
        ]
    )


def text_direction_of(edits, i):
    raw = edits.text_directions[i]
    return DeltaDirection(
        raw=raw, unit=F.normalize(raw, dim=0), source="", target=f"edit {i}", kind="text", clip_fingerprint=""
    )


def test_the_world_has_a_modality_gap_but_aligned_deltas():
    edits = DeltaWorld(seed=1).text_edits(300)
    assert float(edits.image_text_cosine.mean()) < 0.5
    assert mean_cosine(edits.text_directions, edits.image_directions) > 0.9


def test_a_mapper_trained_on_images_only_predicts_code_changes_from_unseen_text_deltas(world_and_model):
    world, model, losses = world_and_model
    edits = world.text_edits(300)
    mapper_cosine = mean_cosine(predictions(model, edits, text_direction_of), edits.true_deltas)
    baseline = torch.cat(
        [straightforward_delta(edits.codes[i : i + 1], text_direction_of(edits, i)) for i in range(300)]
    )
    baseline_cosine = mean_cosine(baseline, edits.true_deltas)
    print(f"\ntext-free mapper cos {mapper_cosine:.3f}, straightforward baseline cos {baseline_cosine:.3f}")
    assert sum(losses[-50:]) / 50 < 0.1 * losses[0]
    assert mapper_cosine >= 0.9
    assert baseline_cosine < 0.3


def test_irrelevant_channels_are_the_ones_a_threshold_removes_in_the_trained_world(world_and_model):
    world, model, _ = world_and_model
    edits = world.text_edits(50)
    direction = text_direction_of(edits, 0)
    full = predict_delta(model, edits.codes[:1], edits.clip[:1], direction, threshold=0.0)
    strict = predict_delta(model, edits.codes[:1], edits.clip[:1], direction, threshold=0.05)
    kept = strict != 0
    assert 0 < int(kept.sum()) < full.numel()
    torch.testing.assert_close(strict[kept], full[kept])
