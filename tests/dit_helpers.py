"""Helpers shared by the DiT attention tests: the tiny DiT stand-ins, sampling them, and probe effects/overrides."""

from dataclasses import dataclass, field

import torch

POSITIVE_TOKENS = 7
NEGATIVE_TOKENS = 5
LATENT_HW = (6, 10)
"""A non-square latent: Flux/Qwen/SD3 (patch 2) see a 3 × 5 token grid."""


@dataclass(frozen=True)
class StandIn:
    name: str
    build: str
    channels: int
    latent_hw: tuple[int, int]
    video_axis: bool = False
    padded_text: int = 0
    """Flux.2 left-pads the text to 512 tokens (``comfy.model_base.Flux2.extra_conds``)."""

    def text(self, tokens: int) -> int:
        """The text tokens the model attends to for a prompt of ``tokens`` tokens."""
        return max(tokens, self.padded_text)

    def column(self, position: int, tokens: int = POSITIVE_TOKENS) -> int:
        """The key column of prompt token ``position``."""
        return position + self.text(tokens) - tokens

    def model(self):
        from harness import tiny_dit_models

        return getattr(tiny_dit_models, self.build)()

    def latent(self, hw: tuple[int, int] | None = None) -> torch.Tensor:
        hw = hw or self.latent_hw
        return torch.zeros(1, self.channels, 1, *hw) if self.video_axis else torch.zeros(1, self.channels, *hw)


STAND_INS = {
    "flux": StandIn("flux", "tiny_flux", 16, LATENT_HW),
    "flux2": StandIn("flux2", "tiny_flux2", 128, (3, 5), padded_text=512),
    "qwen_image": StandIn("qwen_image", "tiny_qwen_image", 16, LATENT_HW, video_axis=True),
    "sd3": StandIn("sd3", "tiny_sd3", 16, LATENT_HW),
}
GRID = (3, 5)


def conds(positive: int = POSITIVE_TOKENS, negative: int = NEGATIVE_TOKENS, **options) -> tuple[list, list]:
    from harness.tiny_dit_models import random_conditioning

    return (
        random_conditioning(positive, 1, guidance=3.5, **options),
        random_conditioning(negative, 2, guidance=3.5, **options),
    )


def sample(model, latent: torch.Tensor, positive, negative, steps: int = 2, seed: int = 3) -> torch.Tensor:
    import comfy.sample

    noise = comfy.sample.prepare_noise(latent, seed)
    return comfy.sample.sample(
        model, noise, steps, 2.0, "euler", "simple", positive, negative, latent, disable_pbar=True, seed=seed
    )


def recorder(target: str = "positive", sigma_range: tuple[float, float] = (1e9, 0.0)):
    """An effect that keeps a copy of every probability tensor it is given, and only reads."""
    from precise_edit.nodes.attention.attention_effect import NONE, AttentionEffect, PromptTarget, StepRange

    @dataclass(eq=False)
    class Recorder(AttentionEffect):
        steps: StepRange
        target: PromptTarget
        seen: list = field(default_factory=list)

        def apply(self, probabilities, context):
            self.seen.append((context.layer.name, probabilities.clone(), context.grid, context.rows))
            return probabilities, NONE

    return Recorder(StepRange(*sigma_range), PromptTarget(role=target))


def token_mask(words: tuple[int, ...], mask, context_length: int = POSITIVE_TOKENS):
    """A Token Mask effect confining the key columns ``words`` to ``mask`` in the positive prompt at every step."""
    from precise_edit.nodes.attention.attention_effect import PromptTarget, StepRange
    from precise_edit.nodes.attention.token_mask_effect import TokenMask

    return TokenMask(
        tokens=words,
        context_length=context_length,
        mask=mask,
        strength=1.0,
        renormalize=False,
        steps=StepRange(1e9, 0.0),
        target=PromptTarget(role="positive"),
    )


class SpyOverride:
    """Another pack's ``optimized_attention_override``: records q, k and the call's layout, then runs the kernel."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, func, *args, **kwargs):
        heads = args[3] if len(args) > 3 else kwargs["heads"]
        self.calls.append(
            {"q": args[0].clone(), "k": args[1].clone(), "heads": heads, "skip": kwargs.get("skip_reshape", False)}
        )
        return func(*args, **kwargs)

    def __deepcopy__(self, memo: dict) -> "SpyOverride":
        return self


def heads_first(x: torch.Tensor, heads: int, skip_reshape: bool) -> torch.Tensor:
    return x if skip_reshape else x.reshape(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)


def explicit_image_text(call: dict, text: int, image_tokens: int) -> torch.Tensor:
    """The image-query × text-key block of the full softmax of a recorded call, in float32."""
    q, k = (heads_first(call[name].float(), call["heads"], call["skip"]) for name in ("q", "k"))
    full = torch.softmax(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5, dim=-1)
    return full[:, :, text : text + image_tokens, :text]


def install_override(model, override) -> None:
    model.model_options.setdefault("transformer_options", {})["optimized_attention_override"] = override


def stand_in_clip(tokenizer: str, t5: bool = True):
    """A CLIP with a real ComfyUI tokenizer (``FluxTokenizer``, ``QwenImageTokenizer``, ``SD3Tokenizer``) and no text
    encoder weights: the nodes read only its tokenizer and which encoders it loaded."""
    from types import SimpleNamespace

    import comfy.text_encoders.flux
    import comfy.text_encoders.qwen_image
    import comfy.text_encoders.sd3_clip

    modules = {
        "FluxTokenizer": comfy.text_encoders.flux,
        "QwenImageTokenizer": comfy.text_encoders.qwen_image,
        "SD3Tokenizer": comfy.text_encoders.sd3_clip,
    }
    built = getattr(modules[tokenizer], tokenizer)()
    return SimpleNamespace(tokenizer=built, cond_stage_model=SimpleNamespace(t5xxl=object() if t5 else None))
