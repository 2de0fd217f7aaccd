"""DeltaSpace directions (templates, Δt, Δi), the relevance estimate, thresholding and the edit itself."""

import pytest
import torch
import torch.nn.functional as F

from precise_edit.core.deltaedit.clip_delta import (
    IMAGENET_TEMPLATES,
    DeltaDirection,
    image_direction,
    prompt_embedding,
    text_direction,
)
from precise_edit.core.deltaedit.delta_edit import apply_delta, straightforward_delta
from precise_edit.core.deltaedit.delta_relevance import (
    disentangle,
    estimate_relevance,
    relevance_scores,
    relevant_channels,
)


class FakeTextEncoder:
    """Deterministic pseudo-embeddings of lower-cased texts (like CLIP's tokenizer), recording what it encodes."""

    def __init__(self, dim: int = 16) -> None:
        self.dim = dim
        self.calls: list[list[str]] = []

    def embed(self, text: str) -> torch.Tensor:
        seed = sum((i + 1) * ord(ch) for i, ch in enumerate(text.lower())) % (2**31)
        return 3 * torch.randn(self.dim, generator=torch.Generator().manual_seed(seed))

    def __call__(self, texts):
        self.calls.append(list(texts))
        return torch.stack([self.embed(text) for text in texts])


def test_the_79_imagenet_templates_of_the_official_code():
    assert len(IMAGENET_TEMPLATES) == 79 == len(set(IMAGENET_TEMPLATES))
    assert all(template.count("{}") == 1 for template in IMAGENET_TEMPLATES)
    assert "a photo of many {}." not in IMAGENET_TEMPLATES
    assert IMAGENET_TEMPLATES[0] == "a bad photo of a {}." and IMAGENET_TEMPLATES[-1] == "a tattoo of the {}."


def test_a_prompt_embedding_is_the_normalised_mean_of_normalised_template_embeddings():
    encoder = FakeTextEncoder()
    embedding = prompt_embedding(encoder, "face with smile")
    texts = [template.format("face with smile") for template in IMAGENET_TEMPLATES]
    assert encoder.calls == [texts]
    expected = F.normalize(torch.stack([F.normalize(encoder.embed(t), dim=0) for t in texts]).mean(0), dim=0)
    torch.testing.assert_close(embedding, expected)
    torch.testing.assert_close(
        prompt_embedding(encoder, "face", use_templates=False), F.normalize(encoder.embed("face"), dim=0)
    )


def test_the_text_direction_keeps_the_raw_difference_and_its_unit_vector():
    encoder = FakeTextEncoder()
    direction = text_direction(encoder, " face ", "face with smile", clip_fingerprint="abc")
    raw = prompt_embedding(encoder, "face with smile") - prompt_embedding(encoder, "face")
    torch.testing.assert_close(direction.raw, raw)
    torch.testing.assert_close(direction.unit, raw / raw.norm())
    assert (direction.source, direction.target, direction.kind, direction.clip_fingerprint) == (
        "face",
        "face with smile",
        "text",
        "abc",
    )


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        ("", "face with smile", "source text is empty"),
        ("face", "   ", "target text is empty"),
        ("face", " face", "identical"),
    ],
)
def test_empty_or_identical_texts_are_refused_before_encoding(source, target, message):
    encoder = FakeTextEncoder()
    with pytest.raises(ValueError, match=message):
        text_direction(encoder, source, target)
    assert encoder.calls == []


def test_texts_that_embed_identically_give_a_clear_error_not_nan():
    with pytest.raises(ValueError, match="direction from 'Face' to 'face' is zero") as error:
        text_direction(FakeTextEncoder(), "Face", "face")
    assert "nan" not in str(error.value).lower()


def test_the_image_direction_is_the_difference_of_normalised_embeddings():
    a, b = torch.tensor([[3.0, 0.0, 0.0]]), torch.tensor([0.0, 0.0, 0.5])
    direction = image_direction(a, b)
    torch.testing.assert_close(direction.raw, torch.tensor([-1.0, 0.0, 1.0]))
    torch.testing.assert_close(direction.unit, torch.tensor([-1.0, 0.0, 1.0]) / 2**0.5)
    with pytest.raises(ValueError, match="zero"):
        image_direction(a, 2 * a)
    with pytest.raises(ValueError, match="not finite"):
        image_direction(a, torch.tensor([float("nan"), 0.0, 0.0]))


def test_thresholding_zeroes_exactly_the_channels_whose_relevance_is_below_it():
    relevance = torch.eye(6, 4)
    relevance[4] = torch.tensor([0.6, 0.8, 0.0, 0.0])
    raw = torch.tensor([0.02, -0.04, 0.03125, -0.0299])
    scores = relevance_scores(relevance, raw)
    torch.testing.assert_close(scores, torch.tensor([0.02, 0.04, 0.03125, 0.0299, 0.02, 0.0]))
    delta = torch.arange(1.0, 13.0).reshape(2, 6)
    out = disentangle(delta, relevance, raw, threshold=0.03)
    keep = torch.tensor([False, True, True, False, False, False])
    assert torch.equal(relevant_channels(relevance, raw, 0.03), keep)
    assert torch.equal(out[:, ~keep], torch.zeros(2, 4))
    assert torch.equal(out[:, keep], delta[:, keep])
    assert torch.equal(disentangle(delta, relevance, raw, threshold=0.0), delta)
    assert torch.equal(disentangle(delta, relevance, raw, threshold=0.0401), torch.zeros_like(delta))


def test_the_relative_threshold_keeps_channels_at_a_fraction_of_the_largest_relevance():
    relevance = torch.eye(6, 4)
    relevance[4] = torch.tensor([0.6, 0.8, 0.0, 0.0])
    raw = torch.tensor([0.02, -0.04, 0.03125, -0.0299])  # scores 0.02, 0.04, 0.03125, 0.0299, 0.02, 0
    keep = relevant_channels(relevance, raw, 0.75, relative=True)  # ≥ 0.03
    assert torch.equal(keep, torch.tensor([False, True, True, False, False, False]))
    assert torch.equal(relevant_channels(relevance, raw, 0.5, relative=True), torch.tensor([True] * 5 + [False]))
    assert torch.equal(relevant_channels(relevance, raw, 1.0, relative=True), torch.tensor([False, True] + [False] * 4))
    assert relevant_channels(relevance, raw, 0.0, relative=True).all()
    # scale-free: the same channels for a 100× longer direction, where the absolute rule keeps all but one
    assert torch.equal(relevant_channels(relevance, 100 * raw, 0.75, relative=True), keep)
    assert int(relevant_channels(relevance, 100 * raw, 0.03).sum()) == 5
    assert not relevant_channels(relevance, torch.zeros(4), 0.25, relative=True).any()
    delta = torch.arange(1.0, 13.0).reshape(2, 6)
    out = disentangle(delta, relevance, raw, threshold=0.75, relative=True)
    assert torch.equal(out[:, keep], delta[:, keep]) and torch.equal(out[:, ~keep], torch.zeros(2, 4))


def test_the_papers_absolute_threshold_keeps_no_channel_of_a_768_d_clip_embedding_and_the_default_keeps_40_percent():
    """The unCLIP-L setup: the conditioning is the joint CLIP's own 768-d image embedding, so R is close to the
    identity and |R_k·Δt| ≈ |Δt_k| ~ ‖Δt‖/√768. Δt is the templated 'face' → 'face with smile' of a 768-d joint CLIP."""
    from delta_helpers import fallback_tokenizer, tiny_clip
    from transformers import CLIPTokenizer

    from precise_edit.core.deltaedit.delta_relevance import DEFAULT_RELATIVE_THRESHOLD, DEFAULT_THRESHOLD

    tokenizer, joint = CLIPTokenizer.from_pretrained(str(fallback_tokenizer())), tiny_clip(projection=768)

    def encode_texts(texts):
        tokens = tokenizer(list(texts), padding=True, return_tensors="pt")
        with torch.no_grad():
            return joint.text_projection(joint.text_model(**tokens).pooler_output)

    direction = text_direction(encode_texts, "face", "face with smile").raw
    generator = torch.Generator().manual_seed(0)
    dim, count = 768, 1200
    cone = F.normalize(torch.randn(dim, generator=generator), dim=0)
    clip = F.normalize(cone + torch.randn(count, dim, generator=generator) / dim**0.5, dim=1)
    codes = clip * (15 + 10 * torch.rand(count, 1, generator=generator))
    relevance = estimate_relevance(codes, clip)
    scores = relevance_scores(relevance, direction)
    typical = float(direction.norm()) / dim**0.5
    measured = (
        f"‖Δt‖ = {float(direction.norm()):.3f}, median |R·Δt| = {float(scores.median()):.4f} "
        f"(0.674 ‖Δt‖/√768 = {0.674 * typical:.4f}), max = {float(scores.max()):.4f}"
    )
    assert abs(float(scores.median()) / (0.674 * typical) - 1) < 0.1, measured
    paper = relevant_channels(relevance, direction, DEFAULT_THRESHOLD)
    assert float(paper.float().mean()) < 0.01, f"τ = 0.03 keeps {float(paper.float().mean()):.2%}; {measured}"
    kept = relevant_channels(relevance, direction, DEFAULT_RELATIVE_THRESHOLD, relative=True)
    edit = codes[0].norm() * direction  # in the joint CLIP's own space the edit follows Δt
    fraction, length = float(kept.float().mean()), float(edit[kept].norm() / edit.norm())
    assert 0.35 < fraction < 0.45 and length > 0.9, f"ρ = 0.25 keeps {fraction:.1%}, {length:.1%} of the length"


def test_relevance_rows_find_the_clip_direction_each_channel_moves_along():
    generator = torch.Generator().manual_seed(0)
    factors = torch.randn(400, 3, generator=generator)
    clip_axes = torch.linalg.qr(torch.randn(32, 3, generator=generator)).Q.T
    clip = 10 * F.normalize(torch.randn(32, generator=generator), dim=0) + factors @ clip_axes
    # channels 0-1 follow factor 0, channels 2-4 factor 1, channel 5 factor 2, channel 6 never varies
    owner = torch.tensor([0, 0, 1, 1, 1, 2])
    codes = torch.cat([factors[:, owner] * torch.tensor([1.0, -2.0, 0.5, 3.0, 1.0, 4.0]), torch.ones(400, 1)], 1)
    relevance = estimate_relevance(codes, clip)
    assert relevance.shape == (7, 32)
    assert torch.equal(relevance[6], torch.zeros(32))
    direction = F.normalize(clip[:1] + 0.5 * clip_axes[1], dim=1) - F.normalize(clip[:1], dim=1)
    scores = relevance_scores(relevance, direction[0])
    assert scores[2:5].min() > 5 * scores[[0, 1, 5, 6]].max()
    kept = relevant_channels(relevance, direction[0], float(scores[2:5].min()) / 2)
    assert torch.equal(kept, torch.tensor([False, False, True, True, True, False, False]))


def test_the_few_image_and_many_image_forms_of_the_relevance_estimate_agree():
    generator = torch.Generator().manual_seed(1)
    codes, clip = torch.randn(5, 8, generator=generator), torch.randn(5, 4, generator=generator) + 3
    s = codes.double() - codes.double().mean(0)
    unit = F.normalize(clip.double(), dim=1)
    c = unit - unit.mean(0)
    lam = 1e-3 * float((s * s).sum()) / 8
    primal = torch.linalg.solve(s.T @ s + lam * torch.eye(8, dtype=torch.float64), s.T @ c)
    torch.testing.assert_close(estimate_relevance(codes, clip), F.normalize(primal, dim=1).float())
    many_codes, many_clip = torch.randn(20, 3, generator=generator), torch.randn(20, 4, generator=generator)
    s = many_codes.double() - many_codes.double().mean(0)
    unit = F.normalize(many_clip.double(), dim=1)
    lam = 1e-3 * float((s * s).sum()) / 3
    dual = s.T @ torch.linalg.solve(s @ s.T + lam * torch.eye(20, dtype=torch.float64), unit - unit.mean(0))
    torch.testing.assert_close(estimate_relevance(many_codes, many_clip), F.normalize(dual, dim=1).float())


def test_relevance_needs_paired_data_of_two_images_or_more():
    with pytest.raises(ValueError, match="at least two images"):
        estimate_relevance(torch.zeros(1, 4), torch.ones(1, 3))
    with pytest.raises(ValueError, match="must pair up"):
        estimate_relevance(torch.zeros(3, 4), torch.ones(2, 3))


def test_strength_zero_returns_the_input_embedding_unchanged_and_strength_scales_the_delta():
    codes = torch.randn(2, 5, dtype=torch.float16)
    delta = torch.randn(2, 5)
    assert apply_delta(codes, delta, 0.0) is codes
    torch.testing.assert_close(apply_delta(codes, delta, 0.5), (codes.float() + 0.5 * delta).half())


def test_the_straightforward_baseline_moves_along_the_direction_scaled_to_the_code_norm():
    raw = torch.tensor([0.0, 0.3, -0.4])
    direction = DeltaDirection(raw=raw, unit=raw / 0.5, source="a", target="b", kind="text", clip_fingerprint="")
    codes = torch.tensor([[3.0, 4.0, 0.0]])
    torch.testing.assert_close(straightforward_delta(codes, direction), 5.0 * raw[None])
    with pytest.raises(ValueError, match="same CLIP for both"):
        straightforward_delta(torch.ones(1, 4), direction)
