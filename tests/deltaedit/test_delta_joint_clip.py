"""The joint CLIP loader reads what transformers writes, and refuses what is not a joint CLIP."""

import json

import pytest
import torch
from delta_helpers import fallback_tokenizer, image_batch, save_tiny_clip, tiny_clip
from safetensors.torch import save_file
from transformers import CLIPTokenizer

from precise_edit.core.deltaedit.joint_clip import JointCLIP, load_joint_clip

TEXTS = ["a photo of a face", "face with smile", "a bad photo of a cat."]


def reference_text_features(model, texts):
    tokens = CLIPTokenizer.from_pretrained(str(fallback_tokenizer()))(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        pooled = model.text_model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]).pooler_output
        return model.text_projection(pooled)


def reference_image_features(model, pixels):
    with torch.no_grad():
        return model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)


def test_a_save_pretrained_folder_loads_and_encodes_like_transformers(tmp_path):
    model = save_tiny_clip(tmp_path / "tiny-clip")
    joint = load_joint_clip(tmp_path / "tiny-clip" / "model.safetensors", fallback_tokenizer(), "tiny-clip")
    assert joint.dim == 16 and joint.image_size == 32 and joint.name == "tiny-clip"
    torch.testing.assert_close(joint.encode_texts(TEXTS), reference_text_features(model, TEXTS))
    images = image_batch(2, 40, 48)
    pixels = joint.pixel_values(images)
    assert pixels.shape == (2, 3, 32, 32)
    torch.testing.assert_close(joint.encode_images(images), reference_image_features(model, pixels))


def test_preprocessing_resizes_the_short_side_crops_the_centre_and_normalises():
    joint_like = JointCLIP(
        module=None, tokenizer=None, image_size=4, image_mean=(0.5,) * 3, image_std=(0.25,) * 3, name="", fingerprint=""
    )
    image = torch.zeros(1, 4, 8, 3)
    image[:, :, 2:6] = 1.0
    assert torch.equal(joint_like.pixel_values(image), torch.full((1, 3, 4, 4), 2.0))


def test_the_fingerprint_identifies_the_weights_not_the_file_name(tmp_path):
    save_tiny_clip(tmp_path / "a", seed=0)
    save_tiny_clip(tmp_path / "b", seed=0)
    save_tiny_clip(tmp_path / "c", seed=1)
    prints = [load_joint_clip(tmp_path / n / "model.safetensors", fallback_tokenizer()).fingerprint for n in "abc"]
    assert prints[0] == prints[1] != prints[2]


def test_a_single_file_uses_its_sidecar_config(tmp_path):
    model = tiny_clip(seed=2)
    save_file(model.state_dict(), str(tmp_path / "clip.safetensors"))
    (tmp_path / "clip.json").write_text(json.dumps(model.config.to_dict()))
    joint = load_joint_clip(tmp_path / "clip.safetensors", fallback_tokenizer())
    torch.testing.assert_close(joint.encode_texts(TEXTS), reference_text_features(model, TEXTS))


def test_a_single_file_without_config_is_configured_from_its_shapes_with_openai_conventions(tmp_path):
    model = tiny_clip(seed=3, width=64, projection=24)
    save_file({k: v.half() for k, v in model.state_dict().items()}, str(tmp_path / "clip.safetensors"))
    joint = load_joint_clip(tmp_path / "clip.safetensors", fallback_tokenizer())
    config = joint.clip.config
    assert (config.text_config.num_hidden_layers, config.vision_config.num_hidden_layers) == (2, 2)
    assert (config.vision_config.image_size, config.vision_config.patch_size, config.projection_dim) == (32, 8, 24)
    model = model.half().float()
    torch.testing.assert_close(joint.encode_texts(TEXTS), reference_text_features(model, TEXTS))


def test_one_shard_of_a_sharded_folder_loads_the_whole_model(tmp_path):
    model = tiny_clip(seed=4)
    model.save_pretrained(str(tmp_path / "sharded"), safe_serialization=True, max_shard_size="1MB")
    shards = sorted((tmp_path / "sharded").glob("model-*.safetensors"))
    assert len(shards) > 1
    joint = load_joint_clip(shards[0], fallback_tokenizer())
    torch.testing.assert_close(joint.encode_texts(TEXTS), reference_text_features(model, TEXTS))


def test_a_missing_tower_or_projection_is_named(tmp_path):
    state = tiny_clip().state_dict()
    vision_only = {k: v for k, v in state.items() if k.startswith(("vision_model.", "visual_projection."))}
    save_file(vision_only, str(tmp_path / "vision.safetensors"))
    with pytest.raises(
        ValueError, match="vision.safetensors is not a joint CLIP: it has no text tower, no text projection"
    ):
        load_joint_clip(tmp_path / "vision.safetensors", fallback_tokenizer())
    no_projection = {k: v for k, v in state.items() if k != "visual_projection.weight"}
    save_file(no_projection, str(tmp_path / "headless.safetensors"))
    with pytest.raises(ValueError, match="no vision projection"):
        load_joint_clip(tmp_path / "headless.safetensors", fallback_tokenizer())


def test_openai_format_files_get_a_conversion_hint(tmp_path):
    save_file(
        {"visual.proj": torch.zeros(4, 2), "transformer.resblocks.0.ln_1.weight": torch.zeros(4)},
        str(tmp_path / "o.safetensors"),
    )
    with pytest.raises(ValueError, match="convert it to transformers' CLIPModel format"):
        load_joint_clip(tmp_path / "o.safetensors", fallback_tokenizer())


def test_pickled_checkpoints_are_never_opened(tmp_path):
    path = tmp_path / "clip.bin"
    path.write_bytes(b"not even read")
    with pytest.raises(ValueError, match="only .safetensors files are loaded"):
        load_joint_clip(path, fallback_tokenizer())


def test_a_text_tower_smaller_than_the_tokenizer_is_refused(tmp_path):
    save_tiny_clip(tmp_path / "small-vocab", vocab_size=1000)
    with pytest.raises(ValueError, match="1000 token embeddings but the tokenizer has 49408"):
        load_joint_clip(tmp_path / "small-vocab" / "model.safetensors", fallback_tokenizer())
