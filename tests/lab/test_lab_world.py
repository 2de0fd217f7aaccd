"""The lab's world and models: deterministic scenes, masks that match the pixels, held-out combinations kept out of
training, the cell latent equal to the cell VAE's, and a text encoder that is contextual."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.comfy_env import ComfyDirs
from lab import world

pytestmark = pytest.mark.lab


def test_scenes_are_deterministic_and_masks_hold_their_colour() -> None:
    first, again = world.scene(41), world.scene(41)
    assert first.caption == again.caption
    np.testing.assert_array_equal(first.image, again.image)
    for obj in first.labels["objects"]:
        mask = first.masks[obj.colour].astype(bool)
        assert mask.sum() > 100, obj
        inside = first.image[mask]
        if obj.texture == "flat":
            np.testing.assert_allclose(inside.mean(0), world.COLOURS[obj.colour], atol=0.03)
        assert obj.colour in first.caption and obj.shape in first.caption


def test_training_scenes_never_show_a_held_out_combination() -> None:
    held_out = world.held_out_combinations()
    assert len(held_out) == 18
    for seed in range(200):
        assert not any(obj.combination in held_out for obj in world.scene(seed).labels["objects"])
        assert world.scene(seed, held_out=True).labels["objects"][0].combination in held_out


def test_portrait_attributes_are_independent_and_drawn() -> None:
    faces = [world.random_face(__import__("random").Random(seed)) for seed in range(400)]
    glasses = np.array([face.glasses for face in faces])
    hat = np.array([face.hat for face in faces])
    assert 0.4 < glasses.mean() < 0.6 and abs(np.corrcoef(glasses, hat)[0, 1]) < 0.15
    sample = world.render_portrait(world.Face("round", "pale", "ginger", "red", True, True, True), seed=3)
    assert {"glasses", "hat", "mouth", "shirt", "face", "hair", "person"} <= set(sample.masks)
    shirt = sample.masks["shirt"].astype(bool)
    np.testing.assert_allclose(sample.image[shirt].mean(0), world.COLOURS["red"], atol=0.03)
    assert sample.caption == (
        "a portrait of a round pale face with ginger hair and a red shirt, with glasses, with a hat, smiling"
    )


def test_cell_latent_is_the_cell_vae_encoding(comfy: ComfyDirs) -> None:
    import comfy.sd

    from harness.tiny_models import cell_vae
    from lab.models.cell_latent import vae_latent

    vae = comfy.sd.VAE(sd=cell_vae().state_dict())
    images = torch.from_numpy(np.stack([world.scene(3).image, world.portrait(4).image]))
    encoded = vae.encode(images).float()
    assert encoded.shape == (2, 4, 16, 16)
    torch.testing.assert_close(encoded, vae_latent(images), atol=0.02, rtol=0)


def test_text_encoder_is_contextual_with_distinct_rows(comfy: ComfyDirs) -> None:
    """Swapping one word changes that row and every later row (causal context), never an earlier one."""
    from lab import train
    from lab.models import text_encoder

    clip = text_encoder.build_clip(train.text_encoder_state())
    encode = train.CaptionEncoder(clip)
    red, green = encode(["a big red circle on the left", "a big green circle on the left"])
    change = (red - green).norm(dim=-1) / red.norm(dim=-1)
    swapped = 3  # start token, "a", "big", then the colour
    assert change[:swapped].max() == 0
    assert change[swapped] > 0.5
    later_words, padding = change[swapped + 1 : 9], change[9:]
    assert later_words.min() > 0.1, f"the words after the swap changed by only {later_words.min():.3f}"
    assert padding.min() > 0.02, f"padding rows changed by only {padding.min():.3f}"
    words = torch.nn.functional.normalize(red[1:8], dim=-1)
    cosine = words @ words.T - torch.eye(7)
    assert cosine.max() < 0.9, f"two word rows have cosine {cosine.max():.2f}"


def test_probe_reads_the_worlds_own_renders() -> None:
    """The probe's ceiling: on the world's renders of held-out captions it finds nearly every object, small striped
    ones included, and reads its position."""
    from lab import probe

    scores = [
        probe.score_object(sample.image, obj)
        for sample in (world.scene(300 + index, held_out=True, count=1 + index % 2) for index in range(100))
        for obj in sample.labels["objects"]
    ]
    position = np.mean([score.position for score in scores])
    assert position >= 0.97, f"position read back from the world's own renders: {position:.3f}"
