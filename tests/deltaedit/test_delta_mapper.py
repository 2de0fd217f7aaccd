"""The Delta Mapper: official architecture for the 6048-channel S-space, generic levels, loss, training, file."""

import math

import pytest
import torch
import torch.nn.functional as F
from delta_helpers import one_thread

from precise_edit.core.deltaedit.clip_delta import DeltaDirection
from precise_edit.core.deltaedit.delta_edit import DeltaEditModel, predict_delta
from precise_edit.core.deltaedit.delta_mapper import (
    DeltaMapper,
    DeltaMapperConfig,
    EqualLinear,
    Level,
    PixelNorm,
    delta_mapper_loss,
)
from precise_edit.core.deltaedit.delta_training import code_scale, sample_pairs, train_delta_mapper
from precise_edit.core.deltaedit.mapper_file import load_delta_edit_model, save_delta_edit_model


def official_parameter_shapes() -> dict[str, tuple[int, ...]]:
    """Parameter shapes of ``Yueming6568/DeltaEdit:delta_mapper.py`` ``DeltaMapper()``, written out from its code.

    ``Mapper(in, out, norm)`` is ``nn.Sequential([PixelNorm()] if norm else [] + 4 × EqualLinear)``; EqualLinear
    holds ``weight [out, in]`` and ``bias [out]``; PixelNorm has no parameters, so normed mappers start at index 1.
    """
    modules = {
        "sm_coarse": (512, 512, True),
        "sm_medium": (512, 512, True),
        "sm_fine": (2464, 2464, True),
        "cm_coarse": (1024, 512, True),
        "cm_medium": (1024, 512, True),
        "cm_fine": (1024, 2464, True),
        "fm_coarse": (1024, 512, False),
        "fm_medium": (1024, 512, False),
        "fm_fine": (4928, 2464, False),
    }
    shapes = {}
    for name, (in_dim, out_dim, norm) in modules.items():
        for layer in range(4):
            index = layer + (1 if norm else 0)
            shapes[f"{name}.mapping.{index}.weight"] = (out_dim, in_dim if layer == 0 else out_dim)
            shapes[f"{name}.mapping.{index}.bias"] = (out_dim,)
    return shapes


def test_the_stylegan_configuration_has_every_official_parameter_with_its_shape():
    config = DeltaMapperConfig.stylegan_s_space()
    assert config.target_dim == 6048 and config.condition_dim == 1024
    mapper = DeltaMapper(config, device="meta")
    ours = {name: tuple(p.shape) for name, p in mapper.named_parameters()}
    assert ours == official_parameter_shapes()
    assert sum(math.prod(shape) for shape in ours.values()) == 82_760_576
    out = mapper(torch.empty(2, 6048, device="meta"), torch.empty(2, 1024, device="meta"))
    assert out.shape == (2, 6048)


def test_equal_linear_and_pixel_norm_compute_the_stylegan2_formulas():
    layer = EqualLinear(6, 4, lr_mul=0.01, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        layer.bias.copy_(torch.arange(4.0))
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(1))
    pre = x @ (layer.weight * 0.01 / math.sqrt(6)).T + layer.bias * 0.01
    expected = torch.where(pre >= 0, pre, 0.2 * pre) * math.sqrt(2)
    torch.testing.assert_close(layer(x), expected)
    assert layer.weight.std() > 50  # stored N(0, 1)/lr_mul, the equalised learning rate

    rows = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(PixelNorm()(rows), rows / (rows.pow(2).mean(dim=1, keepdim=True) + 1e-8).sqrt())


def test_row_levels_share_their_modules_across_rows_like_the_official_coarse_and_medium():
    config = DeltaMapperConfig(Level(3, 4), Level(2, 4), Level(0, 5), condition_dim=6)
    mapper = DeltaMapper(config, generator=torch.Generator().manual_seed(0))
    codes = torch.randn(2, config.target_dim, generator=torch.Generator().manual_seed(1))
    condition = torch.randn(2, 6, generator=torch.Generator().manual_seed(2))
    out = mapper(codes, condition)
    coarse_rows = mapper.sm_coarse(codes[:, :12].reshape(2, 3, 4))
    c = mapper.cm_coarse(condition)
    expected_row_1 = mapper.fm_coarse(torch.cat([coarse_rows[:, 1], c], dim=1))
    torch.testing.assert_close(out[:, 4:8], expected_row_1)
    fine = mapper.fm_fine(torch.cat([mapper.sm_fine(codes[:, 20:]), mapper.cm_fine(condition)], dim=1))
    torch.testing.assert_close(out[:, 20:], fine)


@pytest.mark.parametrize(("target_dim", "clip_dim"), [(1024, 512), (768, 768), (1280, 1024), (64, 64), (3, 2)])
def test_generic_targets_split_into_three_flat_levels_in_the_official_proportions(target_dim, clip_dim):
    config = DeltaMapperConfig.for_target(target_dim, clip_dim)
    sizes = [level.size for level in config.levels]
    assert sum(sizes) == target_dim and all(level.rows == 0 for level in config.levels)
    assert config.condition_dim == 2 * clip_dim
    if target_dim >= 64:
        assert [round(size / target_dim, 2) for size in sizes] == pytest.approx([0.25, 0.34, 0.41], abs=0.01)
    mapper = DeltaMapper(config, device="meta")
    assert mapper(torch.empty(1, target_dim, device="meta"), torch.empty(1, 2 * clip_dim, device="meta")).shape == (
        1,
        target_dim,
    )
    assert DeltaMapperConfig.from_dict(config.to_dict()) == config


def test_a_target_too_small_for_three_levels_is_refused():
    with pytest.raises(ValueError, match="at least 3 channels"):
        DeltaMapperConfig.for_target(2, 8)


def test_the_loss_is_mse_plus_one_minus_mean_cosine():
    predicted = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    target = torch.tensor([[1.0, 1.0], [0.0, -2.0]])
    mse = ((predicted - target) ** 2).mean()
    cosine = torch.tensor([1 / math.sqrt(2), -1.0]).mean()
    torch.testing.assert_close(delta_mapper_loss(predicted, target), mse + 1 - cosine)
    assert float(delta_mapper_loss(target, target)) == pytest.approx(0.0, abs=1e-6)


def test_pairs_are_built_from_two_different_images_as_the_official_dataset():
    codes = torch.arange(12.0).reshape(4, 3)
    clip = F.normalize(torch.randn(4, 5, generator=torch.Generator().manual_seed(0)), dim=1)
    source, condition, target = sample_pairs(codes, clip, 64, torch.Generator().manual_seed(1))
    first = (source[:, 0] / 3).long()
    second = ((source + target)[:, 0] / 3).long()
    assert (first != second).all()
    torch.testing.assert_close(condition[:, :5], clip[first])
    torch.testing.assert_close(condition[:, 5:], F.normalize(clip[second] - clip[first], dim=1))


def small_training_set(count: int = 32, target_dim: int = 12, clip_dim: int = 8):
    generator = torch.Generator().manual_seed(3)
    latent = torch.randn(count, 4, generator=generator)
    codes = 20 * latent @ torch.randn(4, target_dim, generator=generator)
    clip = latent @ torch.randn(4, clip_dim, generator=generator) + 3 * torch.randn(clip_dim, generator=generator)
    return codes, clip


def test_training_is_deterministic_and_lowers_the_loss():
    codes, clip = small_training_set()
    config = DeltaMapperConfig.for_target(12, 8)
    runs = []
    with one_thread():
        for _ in range(2):
            mapper = DeltaMapper(config, generator=torch.Generator().manual_seed(0))
            runs.append(
                train_delta_mapper(
                    mapper, codes, clip, steps=150, batch_size=16, learning_rate=1.0, seed=5, scale=code_scale(codes)
                )
            )
    assert runs[0] == runs[1]
    assert sum(runs[0][-10:]) / 10 < 0.6 * sum(runs[0][:10]) / 10


def test_training_refuses_data_that_does_not_fit_the_mapper():
    mapper = DeltaMapper(DeltaMapperConfig.for_target(12, 8))
    codes, clip = small_training_set()
    with pytest.raises(ValueError, match="at least two images"):
        train_delta_mapper(mapper, codes[:1], clip[:1], steps=1)
    with pytest.raises(ValueError, match="sized for codes of 12 and CLIP embeddings of 8"):
        train_delta_mapper(mapper, codes, torch.randn(32, 6), steps=1)


def test_the_mapper_file_round_trips_weights_relevance_and_config(tmp_path):
    codes, clip = small_training_set()
    config = DeltaMapperConfig.for_target(12, 8)
    mapper = DeltaMapper(config, generator=torch.Generator().manual_seed(0))
    model = DeltaEditModel(
        mapper=mapper,
        code_scale=7.5,
        relevance=F.normalize(torch.randn(12, 8), dim=1),
        clip_fingerprint="clipfp",
        target_fingerprint="targetfp",
        training={"steps": 3},
    )
    save_delta_edit_model(model, tmp_path / "m.safetensors")
    loaded = load_delta_edit_model(tmp_path / "m.safetensors")
    assert loaded.mapper.config == config and loaded.code_scale == 7.5 and loaded.training == {"steps": 3}
    assert (loaded.clip_fingerprint, loaded.target_fingerprint) == ("clipfp", "targetfp")
    torch.testing.assert_close(loaded.relevance, model.relevance)
    raw = F.normalize(torch.randn(8), dim=0) * 0.2
    direction = DeltaDirection(
        raw=raw, unit=F.normalize(raw, dim=0), source="a", target="b", kind="text", clip_fingerprint="clipfp"
    )
    torch.testing.assert_close(
        predict_delta(loaded, codes[:4], clip[:4], direction), predict_delta(model, codes[:4], clip[:4], direction)
    )


def test_a_safetensors_file_that_is_not_a_mapper_is_refused_by_name(tmp_path):
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(2)}, str(tmp_path / "lora.safetensors"))
    with pytest.raises(ValueError, match="lora.safetensors is not a Precise Edit Delta Mapper file"):
        load_delta_edit_model(tmp_path / "lora.safetensors")
