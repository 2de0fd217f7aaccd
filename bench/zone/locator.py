"""Sampling time of InstructPix2Pix with ZONE's Instruction Locator against stock InstructPix2Pix sampling.

Variants, each sampling the same noise, instruction and image latent with the same InstructPix2Pix UNet:
- stock: ComfyUI's DualCFGGuider (text guidance 7.5, image guidance 1.5) on the model as loaded;
- fused guider: Precise Edit's Fused Instruct Guider without MagicBrush (β = 0) on the model as loaded;
- locator: the stock guider on the Instruction Locator's model (both null-instruction branches recorded in the
  coarsest input/output layers, ZONE's default);
- locator + fused guider: ZONE's path without MagicBrush.
Target for the locator: ≤ 1.15 × stock.

    .venv/bin/python bench/zone/locator.py                                  # tiny InstructPix2Pix UNet, CPU
    .venv/bin/python bench/zone/locator.py --preset full --device cuda      # full-size SD1.5 IP2P UNet, 512², 20 steps
"""

import sys
from pathlib import Path

import torch

sys.path.append(str(Path(__file__).resolve().parents[2]))

from bench.common import compare, parser, random_conditioning, sd15_unet, start, unload  # noqa: E402

END_TOKEN = 6


def main(argv: list[str] | None = None) -> int:
    bench = start(__file__, parser(__doc__.splitlines()[0]).parse_args(argv))
    import comfy.sample
    import comfy.samplers
    import comfy_extras.nodes_custom_sampler as custom

    from precise_edit.nodes.zone.nodes_instruct import FusedInstructGuider, with_image
    from precise_edit.nodes.zone.nodes_locate import DEFAULT_BRANCHES, ZONE_LAYERS, locate

    preset = bench.preset
    model = sd15_unet(preset, in_channels=8)
    prompt, negative_prompt = random_conditioning(2)
    positive, negative = [[prompt, {}]], [[negative_prompt, {}]]
    source = torch.randn(1, 4, preset.latent, preset.latent, generator=torch.Generator().manual_seed(1))
    latent = torch.zeros_like(source)
    noise = comfy.sample.prepare_noise(latent, 0)
    located, store = locate(model, END_TOKEN, DEFAULT_BRANCHES, ZONE_LAYERS)

    def dual(patcher):
        guider = custom.Guider_DualCFG(patcher)
        guider.set_conds(with_image(positive, source), with_image(negative, source), negative)
        guider.set_cfg(7.5, 1.5)
        return guider

    def fused(patcher):
        guider = FusedInstructGuider(patcher, None, text_guidance=7.5, image_guidance=1.5, beta=0.0)
        guider.set_instruction(positive, negative, source)
        return guider

    guiders = {
        "stock": dual(model),
        "fused guider": fused(model),
        "locator": dual(located),
        "locator + fused": fused(located),
    }
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "karras", preset.steps)
    sampler = comfy.samplers.sampler_object("dpmpp_2m")
    runs = {
        name: lambda guider=guider: guider.sample(noise, latent, sampler, sigmas, disable_pbar=True, seed=0)
        for name, guider in guiders.items()
    }
    title = f"{preset.name} SD1.5 InstructPix2Pix UNet, {preset.image}² px, {preset.steps} dpmpp_2m steps, 7.5/1.5"
    compare(bench, title, runs, {"stock": "stock"})
    if not store.layers:
        raise RuntimeError("the locator recorded nothing")
    print(f"locator layers: {', '.join(store.layers)}")
    unload()
    return 0


if __name__ == "__main__":
    sys.exit(main())
