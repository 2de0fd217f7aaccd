"""The DeltaEdit lab's models serve the pack's nodes as a user's would: one toy CLIP read as the pack's joint CLIP and
as ComfyUI's CLIP_VISION gives the same embedding; the unCLIP UNet starts as the part-1 UNet and reads the ADM vector
ComfyUI's unCLIP route builds; the captions' hard negatives differ in one attribute. Untrained weights: fast."""

from __future__ import annotations

import random
from dataclasses import fields

import numpy as np
import pytest
import torch

from harness.comfy_env import ComfyDirs
from lab import portrait_captions, world

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def toy_state() -> dict[str, torch.Tensor]:
    from lab.models import toy_clip

    return {key: value for key, value in toy_clip.build_model(seed=3).state_dict().items() if "position_ids" not in key}


def portraits(count: int) -> torch.Tensor:
    return torch.from_numpy(np.stack([world.portrait(seed).image for seed in range(count)]))


def test_the_joint_clip_folder_and_the_clip_vision_embed_images_alike(
    comfy: ComfyDirs, toy_state: dict, tmp_path
) -> None:
    from lab.models import toy_clip
    from precise_edit.core.deltaedit.joint_clip import load_joint_clip

    weights = toy_clip.write_folder(toy_state, tmp_path / toy_clip.FOLDER_NAME)
    joint = load_joint_clip(weights, tmp_path / "no-fallback-needed")
    vision = toy_clip.clip_vision(toy_state, weights.parent / toy_clip.VISION_CONFIG_FILE)
    images = portraits(3)
    with torch.no_grad():
        embeds = vision.encode_image(images, crop=True).image_embeds.float()
    assert joint.dim == embeds.shape[1] == toy_clip.EMBEDDING_DIM and joint.image_size == world.SIZE
    # ComfyUI keeps the vision weights in float16 on the CPU; the joint CLIP computes in float32.
    torch.testing.assert_close(joint.encode_images(images), embeds, atol=0.02 * float(embeds.abs().max()), rtol=0.02)


def test_the_unclip_unet_starts_as_the_part1_unet_and_reads_comfys_adm_vector(comfy: ComfyDirs, toy_state) -> None:
    import comfy.clip_vision

    from lab.models import toy_clip, unclip_unet, unet

    torch.manual_seed(0)
    part1 = {key: value for key, value in unet.build_model(trainable=True).diffusion_model.state_dict().items()}
    model = unclip_unet.build_model(trainable=True)
    unclip_unet.load_part1(model.diffusion_model, part1)
    embeds = torch.randn(2, toy_clip.EMBEDDING_DIM) * 3
    adm = unclip_unet.adm_input(model, embeds)
    x, t, context = torch.randn(2, 4, 16, 16), torch.tensor([700.0, 50.0]), torch.randn(2, 77, 64)
    with torch.no_grad():
        reference = unet.build_model(trainable=True)
        reference.diffusion_model.load_state_dict(part1)
        torch.testing.assert_close(
            model.diffusion_model(x, t, context, y=adm), reference.diffusion_model(x, t, context)
        )
    output = comfy.clip_vision.Output()
    output["image_embeds"] = embeds[:1]
    unclip = [{"clip_vision_output": output, "strength": 1.0, "noise_augmentation": 0.0}]
    comfy_adm = model.encode_adm(unclip_conditioning=unclip, device=torch.device("cpu"), seed=10)
    assert comfy_adm.shape == (1, 2 * toy_clip.EMBEDDING_DIM)
    # Both noise the embedding at level 0 (standard deviation 0.006 of squaredcos_cap_v2), with their own noise.
    torch.testing.assert_close(comfy_adm, adm[:1], atol=0.06, rtol=0)
    no_image = model.encode_adm(device=torch.device("cpu"))
    assert not no_image.any()


def test_a_hard_negative_caption_changes_exactly_one_attribute() -> None:
    rng = random.Random(0)
    for seed in range(40):
        face = world.random_face(random.Random(seed))
        named = portrait_captions.random_named(rng, 0.6) or ("hat",)
        negative = portrait_captions.hard_negative(face, named, rng)
        assert negative != portrait_captions.caption(face, named)
        changed = [
            field.name
            for field in fields(world.Face)
            if any(
                negative == portrait_captions.caption(world.Face(**{**face.__dict__, field.name: value}), named)
                for value in portrait_captions.VALUES[field.name]
            )
        ]
        assert len(changed) == 1, (negative, changed)


def test_a_caption_names_only_the_chosen_attributes() -> None:
    face = world.Face("oval", "tan", "ginger", "green", True, False, True)
    assert portrait_captions.caption(face) == (
        "a portrait of an oval tan face with ginger hair, a green shirt, glasses, a hat, no smile"
    )
    assert portrait_captions.caption(face, ("hair",)) == "a portrait of a face with ginger hair"
    assert portrait_captions.caption(face, ()) == "a portrait of a face"
