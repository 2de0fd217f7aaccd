"""Sampling time with one word captured in every joint-attention block of a Flux stand-in, against stock sampling,
and the memory of one capture at Flux's 1024² geometry.

Variants, each sampling the same noise and prompts with the same model:
- stock: the model as built;
- capture: one word recorded in every double and single block (the DiT attention patch's override computes the
  image × text probabilities normalised over all keys, the store keeps their running mean);
- injector: one word masked to the left half of the image in every block (probabilities plus the (A* − A)V
  correction on the text columns).
Target: capture ≤ 1.15 × stock.

The memory figures are computed from shapes (Flux.1 at 1024²: 4096 image tokens, 512 T5 tokens, 24 heads, fp32
probabilities): what the store keeps per captured block, and what one block call holds while it runs (the
image × text block and one query chunk of scores over all keys). Target: ≤ 0.15 GB per captured block.

    .venv/bin/python bench/attention/dit_overhead.py          # Flux stand-in (4 heads × 64, 2 double + 4 single
                                                               # blocks), 256 image and 256 text tokens, CPU
"""

import sys
from pathlib import Path

import torch

sys.path.append(str(Path(__file__).resolve().parents[2]))

from bench.common import compare, parser, start  # noqa: E402

TEXT_TOKENS = 256
WORD = 5
BENCH_FLUX = {"hidden_size": 256, "num_heads": 4, "axes_dim": [8, 28, 28], "depth": 2, "depth_single_blocks": 4}
LATENT_SIDE = {"tiny": 32, "full": 128}
GIB = 1024**3


def capture_memory(image_tokens: int = 4096, text_tokens: int = 512, heads: int = 24) -> dict[str, float]:
    """GB of one capture per block at Flux's 1024² geometry, from shapes (float32)."""
    from precise_edit.core.attention.joint_attention import QUERY_CHUNK

    keys = image_tokens + text_tokens
    return {
        "stored per block (running mean, text columns)": image_tokens * text_tokens * 4 / GIB,
        "image x text block during a call": heads * image_tokens * text_tokens * 4 / GIB,
        "one query chunk of scores during a call": heads * QUERY_CHUNK * keys * 4 / GIB,
        "full probabilities (not materialised)": heads * keys * keys * 4 / GIB,
    }


def variants(model, latent_side: int) -> dict:
    from precise_edit.core.attention.attention_store import AttentionStore
    from precise_edit.nodes.attention.attention_capture import AttentionCapture
    from precise_edit.nodes.attention.attention_effect import PromptTarget, StepRange
    from precise_edit.nodes.attention.dit_attention_patch import add_dit_attention_effect
    from precise_edit.nodes.attention.dit_layers import dit_family
    from precise_edit.nodes.attention.token_mask_effect import TokenMask

    blocks = dit_family(model).blocks
    steps = StepRange.from_percent(model, 0.0, 1.0)
    mask = torch.zeros(1, latent_side * 8, latent_side * 8)
    mask[:, :, : latent_side * 4] = 1.0
    capture = AttentionCapture(
        store=AttentionStore(words={"word": [WORD]}),
        context_length=TEXT_TOKENS,
        heads=None,
        steps=steps,
        target=PromptTarget(),
    )
    injector = TokenMask(
        tokens=(WORD,),
        context_length=TEXT_TOKENS,
        mask=mask,
        strength=1.0,
        renormalize=False,
        steps=steps,
        target=PromptTarget(),
    )
    return {
        "stock": model,
        "capture": add_dit_attention_effect(model, capture, blocks),
        "injector": add_dit_attention_effect(model, injector, blocks),
    }


def main(argv: list[str] | None = None) -> int:
    bench = start(__file__, parser(__doc__.splitlines()[0], repeats=5).parse_args(argv))
    import comfy.sample

    from harness.tiny_dit_models import flux_with, random_conditioning

    preset = bench.preset
    side = LATENT_SIDE[preset.name]
    model = flux_with(BENCH_FLUX)
    positive = random_conditioning(TEXT_TOKENS, 1, guidance=3.5)
    negative = random_conditioning(TEXT_TOKENS, 2, guidance=3.5)
    latent = torch.zeros(1, 16, side, side)
    noise = comfy.sample.prepare_noise(latent, 0)

    def sample(variant):
        return lambda: comfy.sample.sample(
            variant, noise, preset.steps, 3.5, "euler", "simple", positive, negative, latent, disable_pbar=True
        )

    runs = {name: sample(variant) for name, variant in variants(model, side).items()}
    title = (
        f"{preset.name} Flux stand-in (4 heads x 64, 2 double + 4 single blocks), {(side // 2) ** 2} image + "
        f"{TEXT_TOKENS} text tokens, {preset.steps} euler steps, cfg 3.5"
    )
    compare(bench, title, runs, {"stock": "stock"})
    for label, gigabytes in capture_memory().items():
        print(f"memory at Flux 1024²: {label}: {gigabytes:.3f} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
