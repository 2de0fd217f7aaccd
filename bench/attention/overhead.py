"""Sampling time with Precise Edit's cross-attention patches against stock ComfyUI sampling of the same model.

Variants, each sampling the same noise and prompts with the same model:
- stock: the model as loaded;
- injector: one word masked to the left half of the image in every cross-attention layer;
- capture: one word recorded in every cross-attention layer (running means);
- injector+capture: both.
Targets: ≤ 1.10 × stock on the tiny CPU model, ≤ 1.03 at full size on a GPU.

    .venv/bin/python bench/attention/overhead.py                                  # tiny SD1.5 UNet, CPU
    .venv/bin/python bench/attention/overhead.py --preset full --device cuda      # full-size SD1.5 UNet, 512², 20 steps
"""

import sys
from pathlib import Path

import torch

sys.path.append(str(Path(__file__).resolve().parents[2]))

from bench.common import compare, parser, random_conditioning, sd15_unet, start, unload  # noqa: E402

MASKED_TOKEN = 5


def variants(model, image: int) -> dict:
    from precise_edit.core.attention.attention_store import AttentionStore
    from precise_edit.nodes.attention.attention_capture import AttentionCapture
    from precise_edit.nodes.attention.attention_effect import PromptTarget, StepRange
    from precise_edit.nodes.attention.cross_attention_patch import add_cross_attention_effect, cross_attention_layers
    from precise_edit.nodes.attention.token_mask_effect import TokenMask

    layers = cross_attention_layers(model)
    steps = StepRange.from_percent(model, 0.0, 1.0)
    mask = torch.zeros(1, image, image)
    mask[:, :, : image // 2] = 1.0
    injector = TokenMask(
        tokens=(MASKED_TOKEN,),
        context_length=77,
        mask=mask,
        strength=1.0,
        renormalize=False,
        steps=steps,
        target=PromptTarget(),
    )
    capture = AttentionCapture(
        store=AttentionStore(words={"word": [MASKED_TOKEN]}),
        context_length=77,
        heads=None,
        steps=steps,
        target=PromptTarget(),
    )
    masked = add_cross_attention_effect(model, injector, layers)
    return {
        "stock": model,
        "injector": masked,
        "capture": add_cross_attention_effect(model, capture, layers),
        "injector+capture": add_cross_attention_effect(masked, capture, layers),
    }


def main(argv: list[str] | None = None) -> int:
    bench = start(__file__, parser(__doc__.splitlines()[0], repeats=7).parse_args(argv))
    import comfy.sample

    preset = bench.preset
    model = sd15_unet(preset)
    prompt, negative_prompt = random_conditioning(2)
    positive, negative = [[prompt, {}]], [[negative_prompt, {}]]
    latent = torch.zeros(1, 4, preset.latent, preset.latent)
    noise = comfy.sample.prepare_noise(latent, 0)

    def sample(variant):
        return lambda: comfy.sample.sample(
            variant, noise, preset.steps, 7.0, "euler", "normal", positive, negative, latent, disable_pbar=True
        )

    runs = {name: sample(variant) for name, variant in variants(model, preset.image).items()}
    title = f"{preset.name} SD1.5 UNet, {preset.image}² px, {preset.steps} euler steps, cfg 7"
    compare(bench, title, runs, {"stock": "stock"})
    unload()
    return 0


if __name__ == "__main__":
    sys.exit(main())
