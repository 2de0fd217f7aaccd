"""Sampling time with MCDM Guider against stock CFG (CFGGuider) on the same 8-channel MCDM UNet.

Variants, each sampling the same noise with the same model, latent size and steps:
- stock-cfg: ComfyUI's CFGGuider (2 branches: positive, negative; the source latent concatenated in both);
- mcdm: MCDM Guider (4 branches: uncond, all, img_p, img_p_concat; target ≤ 2.2 × stock);
- mcdm+mask: MCDM Guider with a mask and the source prompt (5 branches, Eq. 3; target ≤ 2.7 × stock).
The image embedding (CLIP vision + adapter) is computed once per edit, not per step, so random 50-token image
embeddings stand in for it here.

    .venv/bin/python bench/mcdm/guider.py                                   # SD1.5-width tiny UNet, CPU
    .venv/bin/python bench/mcdm/guider.py --preset full --device cuda       # full SD1.5 UNet, 512², 20 steps
"""

import sys
from pathlib import Path

import torch

sys.path.append(str(Path(__file__).resolve().parents[2]))

from bench.common import compare, parser, random_conditioning, start, unet_config, unload  # noqa: E402
from harness.tiny_models import random_unet  # noqa: E402

SCALES = (3.0, 2.0, 4.0)


def guiders(model, latent: torch.Tensor) -> dict:
    import comfy.samplers

    from precise_edit.nodes.mcdm.conditioning import SourceEmbedding
    from precise_edit.nodes.mcdm.nodes_edit import MCDMGuider, mcdm_branches

    prompts = random_conditioning(3, seed=1)
    text = [[[prompt, {}]] for prompt in prompts]
    embeddings = random_conditioning(2, seed=2, tokens=50)
    source = SourceEmbedding(latent, *embeddings)
    stock = comfy.samplers.CFGGuider(model)
    stock.set_conds([[prompts[0], {"concat_latent_image": latent}]], [[prompts[1], {"concat_latent_image": latent}]])
    stock.set_cfg(7.0)
    plain = MCDMGuider(model)
    plain.set_mcdm(mcdm_branches(source, text[0], text[1]), latent, SCALES)
    masked = MCDMGuider(model)
    mask = torch.zeros(1, latent.shape[-2] * 8, latent.shape[-1] * 8)
    mask[:, :, : mask.shape[-1] // 2] = 1.0
    masked.set_mcdm(mcdm_branches(source, text[0], text[1], text[2]), latent, SCALES, mask)
    return {"stock-cfg": stock, "mcdm": plain, "mcdm+mask": masked}


def main(argv: list[str] | None = None) -> int:
    bench = start(__file__, parser(__doc__.splitlines()[0]).parse_args(argv))
    import comfy.samplers

    from precise_edit.nodes.mcdm.model_file import build_model_patcher

    preset = bench.preset
    config = unet_config(preset, in_channels=8)
    model = build_model_patcher(config, random_unet(config, seed=0).state_dict(), "bench")
    latent = torch.randn(1, 4, preset.latent, preset.latent, generator=torch.Generator().manual_seed(2))
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(3))
    sigmas = model.get_model_object("model_sampling").sigma(torch.linspace(999, 0, preset.steps + 1)).float()
    sigmas[-1] = 0.0
    sampler = comfy.samplers.sampler_object("euler")
    runs = {
        name: lambda guider=guider: guider.sample(noise, latent, sampler, sigmas, disable_pbar=True)
        for name, guider in guiders(model, latent).items()
    }
    title = f"{preset.name} 8-channel SD1.5 UNet, {preset.image}² px, {preset.steps} euler steps"
    compare(bench, title, runs, {"stock CFG": "stock-cfg"})
    unload()
    return 0


if __name__ == "__main__":
    sys.exit(main())
