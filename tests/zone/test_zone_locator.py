"""Instruction Locator and Edit Region From Attention: what is recorded (layers, grid, branches × steps, memory that
does not grow with steps), in a real graph with SamplerCustomAdvanced; ZONE's M_b rules; bad inputs."""

import pytest
import torch
import torch.nn.functional as F
from zone_locator_graph import INSTRUCTION, locator_graph

from precise_edit.core.attention.attention_store import AttentionStore, LayerMean
from precise_edit.core.zone.edit_region import PAPER_THRESHOLD, RELEASED_THRESHOLD, attention_difference, edit_region


def recorded(run_graph, steps: int):
    outputs = run_graph(locator_graph(steps=steps), outputs=["6", "11", "12"])
    return outputs["6"][1], outputs["11"][0], outputs["12"]


def test_locator_records_the_null_branches_of_the_coarsest_outer_layers_every_step_in_fixed_memory(
    run_graph, tiny_models
):
    store, latent, (mask, difference) = recorded(run_graph, 1)
    # the tiny UNet: 32 px → 4×4 latent; its coarsest input/output layers are at level 1 (a 2×2 grid)
    assert list(store.layers) == ["input_3_0", "output_0_0", "output_1_0"]
    assert store.words == {"start": [0], "end": [5]}  # <start> make the hat blue <end>
    for entry in store.layers.values():
        assert entry.grid == (2, 2) and entry.mean.shape == (1, 4, 77)
        assert entry.count == 1 * 2  # one step × the two null-instruction branches
        assert torch.allclose(entry.mean.sum(-1), torch.ones(1, 4))  # head-mean probabilities over 77 tokens
    assert latent["samples"].shape == (1, 4, 4, 4)
    assert mask.shape == (1, 32, 32) and difference.shape == (1, 32, 32, 3) and mask.all()
    first = {name: entry.mean.clone() for name, entry in store.layers.items()}

    store, _, _ = recorded(run_graph, 3)
    for name, entry in store.layers.items():
        assert entry.count == 3 * 2 and entry.mean.shape == first[name].shape  # memory independent of steps
        assert not torch.equal(entry.mean, first[name])  # a new run starts a new mean


def test_locator_rejects_a_model_that_is_not_instruct_pix2pix(sd15):
    from precise_edit.nodes.zone.nodes_locate import DEFAULT_BRANCHES, ZONE_LAYERS, InstructionLocator

    with pytest.raises(ValueError, match="model must be an InstructPix2Pix model .*8 input channels.* takes 4"):
        InstructionLocator.execute(sd15.model, sd15.clip, INSTRUCTION, DEFAULT_BRANCHES, ZONE_LAYERS)


def synthetic_store(bos: torch.Tensor, eos: torch.Tensor) -> AttentionStore:
    """A store with one 1-image layer whose token 0 map is ``bos`` and token 5 map is ``eos`` ([h, w] each)."""
    grid = tuple(bos.shape)
    mean = torch.full((1, bos.numel(), 77), 1e-4)
    mean[0, :, 0], mean[0, :, 5] = bos.flatten(), eos.flatten()
    return AttentionStore(words={"start": [0], "end": [5]}, layers={"output_0_0": LayerMean(grid, mean)})


def test_edit_region_node_rules_and_errors(comfy):
    from precise_edit.nodes.zone.nodes_locate import EditRegionFromAttention

    bos = torch.full((4, 4), 0.9)
    eos = torch.full((4, 4), 0.02)
    bos[1:3, 1:3], eos[1:3, 1:3] = 0.5, 0.3  # the edit: the start token loses, the end token gains attention
    latent = {"samples": torch.zeros(1, 4, 4, 4)}
    store = synthetic_store(bos, eos)
    mask, gray = EditRegionFromAttention.execute(store, latent, "released", 128).result
    assert mask.shape == (1, 32, 32) and gray.shape == (1, 32, 32, 3)
    assert mask[0, 14:18, 14:18].all() and not mask[0, :4].any() and not mask[0, :, :4].any()
    paper, _ = EditRegionFromAttention.execute(store, latent, "paper", 0).result
    assert paper.sum() >= mask.sum()  # a higher threshold on D takes a larger region

    # D is 0 where the end-token map peaks, so M_b is only empty when that map is zero everywhere
    flat = synthetic_store(torch.full((4, 4), 0.9), torch.zeros(4, 4))
    with pytest.raises(ValueError, match="edit region M_b of image 0 is empty: no pixel has D < 55"):
        EditRegionFromAttention.execute(flat, latent, "released", 128)
    with pytest.raises(ValueError, match="latent has 2 images but the attention was recorded for 1"):
        EditRegionFromAttention.execute(store, {"samples": torch.zeros(2, 4, 4, 4)}, "paper", 0)
    with pytest.raises(ValueError, match="nothing was recorded"):
        EditRegionFromAttention.execute(AttentionStore(), latent, "paper", 0)


def test_a_mask_of_another_size_than_the_segments_is_refused_downstream(comfy):
    from precise_edit.nodes.zone.nodes_locate import EditRegionFromAttention
    from precise_edit.nodes.zone.nodes_segment import RegionIoUSelect

    bos, eos = torch.full((4, 4), 0.9), torch.full((4, 4), 0.02)
    bos[1:3, 1:3], eos[1:3, 1:3] = 0.5, 0.3
    mask, _ = EditRegionFromAttention.execute(
        synthetic_store(bos, eos), {"samples": torch.zeros(1, 4, 4, 4)}, "paper", 0
    ).result
    segments = torch.zeros(2, 48, 48)
    segments[0, 10:30, 10:30] = 1
    with pytest.raises(ValueError, match="32.*48|48.*32"):
        RegionIoUSelect.execute([mask], ["argmax"], [3], [0.5], [0], ["error"], segments=[segments])


def constructed_scene(center: tuple[float, float], radius: float, p_object: float, blur: float, seed: int):
    """A disc edited in a 512 px image and the start/end-token maps IP2P's null branches would give on a 16×16 grid:
    the share of attention off the start token rises from 5 % to ``p_object`` with the disc's coverage of each cell
    (blurred by ``blur`` cells, as attention spreads past the object), the end token taking 30 % of that share."""
    yy, xx = torch.meshgrid(torch.arange(512) + 0.5, torch.arange(512) + 0.5, indexing="ij")
    disc = (xx - center[0]) ** 2 + (yy - center[1]) ** 2 <= radius**2
    coverage = F.adaptive_avg_pool2d(disc.float()[None, None], 16)
    if blur > 0:
        taps = torch.exp(-(torch.arange(-3, 4.0) ** 2) / (2 * blur**2))
        kernel = (taps[:, None] * taps[None, :] / taps.sum() ** 2)[None, None]
        coverage = F.conv2d(F.pad(coverage, (3, 3, 3, 3), mode="replicate"), kernel)
    jitter = 0.01 * torch.rand(16, 16, generator=torch.Generator().manual_seed(seed))
    off_start = 0.05 + (p_object - 0.05) * coverage[0] + jitter
    return disc, 1 - off_start, 0.3 * off_start


def test_released_rule_locates_a_constructed_edit_better_than_the_papers_threshold():
    """Mean IoU with the edited disc over 30 constructed scenes: D ≤ 54 (released) 0.86 vs D < 128 (paper) 0.78."""
    ious = {RELEASED_THRESHOLD: [], PAPER_THRESHOLD: []}
    scenes = [((256, 256), 100), ((150, 300), 60), ((350, 180), 140), ((256, 380), 40), ((200, 200), 180)]
    for seed, (center, radius) in enumerate(scenes):
        for blur in (0.0, 1.0):
            for p_object in (0.25, 0.4, 0.7):
                disc, bos, eos = constructed_scene(center, radius, p_object, blur, seed)
                difference = attention_difference(bos, eos, (512, 512))
                for threshold, values in ious.items():
                    region = edit_region(difference, threshold)[0]
                    values.append(((region & disc).sum() / (region | disc).sum()).item())
    mean = {threshold: sum(values) / len(values) for threshold, values in ious.items()}
    assert mean[RELEASED_THRESHOLD] > mean[PAPER_THRESHOLD] + 0.05
    assert min(ious[RELEASED_THRESHOLD]) > 0.5 > min(ious[PAPER_THRESHOLD])
    assert round(mean[RELEASED_THRESHOLD], 2) == 0.86 and round(mean[PAPER_THRESHOLD], 2) == 0.78


def test_difference_is_the_saturating_byte_difference_of_max_scaled_maps():
    bos = torch.tensor([[[1.0, 0.5], [0.25, 0.0]]])
    eos = torch.tensor([[[0.1, 0.2], [0.4, 0.0]]])
    # ⌊255·A/max⌋: bos 255, 127, 63, 0; eos 63, 127, 255, 0 → D = 192, 0, 0 (saturated), 0
    difference = attention_difference(bos, eos, (2, 2))
    assert difference.tolist() == [[[192.0, 0.0], [0.0, 0.0]]]
    assert edit_region(difference, RELEASED_THRESHOLD).tolist() == [[[False, True], [True, True]]]
