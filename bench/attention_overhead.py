"""Sampling time with Precise Edit's cross-attention patches against stock ComfyUI sampling of the same model.

Variants, each sampling the same noise and prompts with the same model:
- stock: the model as loaded;
- injector: one word masked to the left half of the image in every cross-attention layer;
- capture: one word recorded in every cross-attention layer (running means);
- injector+capture: both.
Runs are interleaved round by round so that machine drift hits every variant alike; the script prints each
variant's median wall time and its ratio to stock (targets: ≤ 1.10 on the tiny CPU model, ≤ 1.03 at full size on a
GPU), and on the CPU also the median process CPU time, which other processes on a shared machine disturb less
(use ``--threads 1`` there).

    .venv/bin/python bench/attention_overhead.py                                 # tiny SD1.5 UNet, CPU
    .venv/bin/python bench/attention_overhead.py --size full --device cuda       # full-size SD1.5 UNet, 512², 20 steps
"""

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.append(str(Path(__file__).resolve().parents[1]))

from bench.interleaved_rounds import device_label, interleaved_times, print_ratios  # noqa: E402
from harness.comfy_env import setup_imports  # noqa: E402
from harness.tiny_models import SD15_UNET, random_unet  # noqa: E402

# The real SD1.5 UNet: four levels (attention on the first three), two res blocks per level.
FULL_SD15_UNET = {
    **SD15_UNET,
    "num_res_blocks": [2, 2, 2, 2],
    "channel_mult": [1, 2, 4, 4],
    "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
    "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
}
SIZES = {"tiny": {"image": 128, "steps": 4}, "full": {"image": 512, "steps": 20}}
MASKED_TOKEN = 5


def load_unet(size: str):
    """A ComfyUI ModelPatcher for a random SD1.5-architecture UNet, loaded the way UNETLoader loads one."""
    import comfy.sd

    config = SD15_UNET if size == "tiny" else FULL_SD15_UNET
    model = comfy.sd.load_diffusion_model_state_dict(random_unet(config, seed=0).state_dict())
    if model is None or type(model.model.model_config).__name__ != "SD15":
        raise RuntimeError("ComfyUI did not detect the benchmark UNet as SD15")
    return model


def variants(model, image: int) -> dict:
    from precise_edit.core.attention_store import AttentionStore
    from precise_edit.nodes.cross_attention_patch import (
        AttentionCapture,
        PromptTarget,
        StepRange,
        TokenMask,
        add_cross_attention_effect,
        cross_attention_layers,
    )

    layers = cross_attention_layers(model)
    steps = StepRange.from_percent(model, 0.0, 1.0)
    mask = torch.zeros(1, image, image)
    mask[:, :, : image // 2] = 1.0
    injector = TokenMask((MASKED_TOKEN,), 77, mask, 1.0, False, steps, PromptTarget())
    capture = AttentionCapture(AttentionStore(words={"word": [MASKED_TOKEN]}), 77, None, steps, PromptTarget())
    masked = add_cross_attention_effect(model, injector, layers)
    return {
        "stock": model,
        "injector": masked,
        "capture": add_cross_attention_effect(model, capture, layers),
        "injector+capture": add_cross_attention_effect(masked, capture, layers),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=list(SIZES), default="tiny")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    setup_imports(cpu=args.device == "cpu")
    import comfy.model_management
    import comfy.sample

    image, steps = SIZES[args.size]["image"], SIZES[args.size]["steps"]
    model = load_unet(args.size)
    g = torch.Generator().manual_seed(0)
    positive = [[torch.randn(1, 77, 768, generator=g), {}]]
    negative = [[torch.randn(1, 77, 768, generator=g), {}]]
    latent = torch.zeros(1, 4, image // 8, image // 8)
    noise = comfy.sample.prepare_noise(latent, 0)
    runs = variants(model, image)

    def sample(variant) -> Callable[[], object]:
        return lambda: comfy.sample.sample(
            variant, noise, steps, 7.0, "euler", "normal", positive, negative, latent, disable_pbar=True
        )

    cuda = args.device == "cuda"
    times = interleaved_times({name: sample(variant) for name, variant in runs.items()}, args.repeats, cuda)
    print(
        f"{args.size} SD1.5 UNet, {image}×{image} px, {steps} euler steps, cfg 7, {device_label(cuda)}, "
        f"{args.repeats} rounds"
    )
    print_ratios(times, {"stock": "stock"}, cuda)
    comfy.model_management.unload_all_models()
    return 0


if __name__ == "__main__":
    sys.exit(main())
