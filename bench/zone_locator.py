"""Sampling time of InstructPix2Pix with ZONE's Instruction Locator against stock InstructPix2Pix sampling.

Variants, each sampling the same noise, instruction and image latent with the same InstructPix2Pix UNet:
- stock: ComfyUI's DualCFGGuider (text guidance 7.5, image guidance 1.5) on the model as loaded;
- fused guider: Precise Edit's Fused Instruct Guider without MagicBrush (β = 0) on the model as loaded;
- locator: the stock guider on the Instruction Locator's model (both null-instruction branches recorded in the
  coarsest input/output layers, ZONE's default);
- locator + fused guider: ZONE's path without MagicBrush.
Runs are interleaved round by round; the script prints each variant's median wall and CPU time and its ratio to
stock (target for the locator: ≤ 1.15).

    .venv/bin/python bench/zone_locator.py --threads 1                      # tiny InstructPix2Pix UNet, CPU
    .venv/bin/python bench/zone_locator.py --size full --device cuda        # full-size SD1.5 IP2P UNet, 512², 20 steps
"""

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.append(str(Path(__file__).resolve().parents[1]))

from bench.attention_overhead import FULL_SD15_UNET  # noqa: E402
from bench.interleaved_rounds import device_label, interleaved_times, print_ratios  # noqa: E402
from harness.comfy_env import setup_imports  # noqa: E402
from harness.tiny_models import SD15_UNET, random_unet  # noqa: E402

SIZES = {"tiny": {"image": 64, "steps": 3}, "full": {"image": 512, "steps": 20}}
END_TOKEN = 6


def load_ip2p_unet(size: str):
    """A ComfyUI ModelPatcher for a random InstructPix2Pix UNet (8 input channels), loaded as UNETLoader does."""
    import comfy.sd

    config = {**(SD15_UNET if size == "tiny" else FULL_SD15_UNET), "in_channels": 8}
    model = comfy.sd.load_diffusion_model_state_dict(random_unet(config, seed=0).state_dict())
    if model is None or type(model.model).__name__ != "SD15_instructpix2pix":
        raise RuntimeError("ComfyUI did not detect the benchmark UNet as SD15 InstructPix2Pix")
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=list(SIZES), default="tiny")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    setup_imports(cpu=args.device == "cpu")
    import comfy.model_management
    import comfy.sample
    import comfy.samplers
    import comfy_extras.nodes_custom_sampler as custom

    from precise_edit.nodes.fused_instruct_guider import FusedInstructGuider, with_image
    from precise_edit.nodes.instruction_locator import DEFAULT_BRANCHES, ZONE_LAYERS, locate

    image, steps = SIZES[args.size]["image"], SIZES[args.size]["steps"]
    model = load_ip2p_unet(args.size)
    g = torch.Generator().manual_seed(0)
    positive = [[torch.randn(1, 77, 768, generator=g), {}]]
    negative = [[torch.randn(1, 77, 768, generator=g), {}]]
    source = torch.randn(1, 4, image // 8, image // 8, generator=g)
    latent = torch.zeros_like(source)
    noise = comfy.sample.prepare_noise(latent, 0)
    located, store = locate(model, END_TOKEN, DEFAULT_BRANCHES, ZONE_LAYERS)

    def dual(patcher):
        guider = custom.Guider_DualCFG(patcher)
        guider.set_conds(with_image(positive, source), with_image(negative, source), negative)
        guider.set_cfg(7.5, 1.5)
        return guider

    def fused(patcher):
        guider = FusedInstructGuider(patcher, None, 7.5, 1.5, 0.0)
        guider.set_instruction(positive, negative, source)
        return guider

    runs = {
        "stock": dual(model),
        "fused guider": fused(model),
        "locator": dual(located),
        "locator + fused": fused(located),
    }
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "karras", steps)
    sampler = comfy.samplers.sampler_object("dpmpp_2m")

    def sample(guider) -> Callable[[], object]:
        return lambda: guider.sample(noise, latent, sampler, sigmas, disable_pbar=True, seed=0)

    cuda = args.device == "cuda"
    times = interleaved_times({name: sample(guider) for name, guider in runs.items()}, args.repeats, cuda)
    if not store.layers:
        raise RuntimeError("the locator recorded nothing")
    print(
        f"{args.size} SD1.5 InstructPix2Pix UNet, {image}×{image} px, {steps} dpmpp_2m steps, 3-way guidance "
        f"7.5/1.5, {device_label(cuda)}, {args.repeats} rounds; locator layers: {', '.join(store.layers)}"
    )
    print_ratios(times, {"stock": "stock"}, cuda)
    comfy.model_management.unload_all_models()
    return 0


if __name__ == "__main__":
    sys.exit(main())
