"""Sampling time with MCDM Guider against stock CFG (CFGGuider) on the same 8-channel MCDM UNet.

Variants, each sampling the same noise with the same model, latent size and steps:
- stock-cfg: ComfyUI's CFGGuider (2 branches: positive, negative; the source latent concatenated in both);
- mcdm: MCDM Guider (4 branches: uncond, all, img_p, img_p_concat; targets ≤ 2.2× stock);
- mcdm+mask: MCDM Guider with a mask and the source prompt (5 branches, Eq. 3; target ≤ 2.7× stock).
The image embedding (CLIP vision + adapter) is computed once per edit, not per step, so random 50-token image
embeddings stand in for it here. Runs are interleaved round by round; the script prints each variant's median wall
time (and process CPU time on the CPU) and its ratio to stock.

    .venv/bin/python bench/mcdm_guider.py --threads 1                       # SD1.5-width tiny UNet, CPU
    .venv/bin/python bench/mcdm_guider.py --size full --device cuda         # full SD1.5 UNet, 512², 20 steps
"""

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.append(str(Path(__file__).resolve().parents[1]))

from bench.attention_overhead import FULL_SD15_UNET  # noqa: E402
from bench.interleaved_rounds import device_label, interleaved_times, print_ratios  # noqa: E402
from harness.comfy_env import ensure_pack_importable, setup_imports  # noqa: E402
from harness.tiny_models import SD15_UNET, random_unet  # noqa: E402

SIZES = {"tiny": {"image": 128, "steps": 4}, "full": {"image": 512, "steps": 20}}
SCALES = (3.0, 2.0, 4.0)


def guiders(model, latent: torch.Tensor) -> dict:
    import comfy.samplers

    from precise_edit.nodes.mcdm_conditioning import SourceEmbedding
    from precise_edit.nodes.mcdm_guider import MCDMGuider, mcdm_branches

    g = torch.Generator().manual_seed(1)
    text = [[[torch.randn(1, 77, 768, generator=g), {}]] for _ in range(3)]
    source = SourceEmbedding(latent, torch.randn(1, 50, 768, generator=g), torch.randn(1, 50, 768, generator=g))
    stock = comfy.samplers.CFGGuider(model)
    stock.set_conds(
        [[text[0][0][0], {"concat_latent_image": latent}]], [[text[1][0][0], {"concat_latent_image": latent}]]
    )
    stock.set_cfg(7.0)
    plain = MCDMGuider(model)
    plain.set_mcdm(mcdm_branches(source, text[0], text[1]), latent, SCALES)
    masked = MCDMGuider(model)
    mask = torch.zeros(1, latent.shape[-2] * 8, latent.shape[-1] * 8)
    mask[:, :, : mask.shape[-1] // 2] = 1.0
    masked.set_mcdm(mcdm_branches(source, text[0], text[1], text[2]), latent, SCALES, mask)
    return {"stock-cfg": stock, "mcdm": plain, "mcdm+mask": masked}


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
    ensure_pack_importable()
    import comfy.model_management
    import comfy.samplers

    from precise_edit.nodes.mcdm_model import build_model_patcher

    image, steps = SIZES[args.size]["image"], SIZES[args.size]["steps"]
    config = {**(SD15_UNET if args.size == "tiny" else FULL_SD15_UNET), "in_channels": 8}
    model = build_model_patcher(config, random_unet(config, seed=0).state_dict(), "bench")
    latent = torch.randn(1, 4, image // 8, image // 8, generator=torch.Generator().manual_seed(2))
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(3))
    sigmas = model.get_model_object("model_sampling").sigma(torch.linspace(999, 0, steps + 1)).float()
    sigmas[-1] = 0.0
    sampler = comfy.samplers.sampler_object("euler")
    runs = guiders(model, latent)

    def sample(guider) -> Callable[[], object]:
        return lambda: guider.sample(noise, latent, sampler, sigmas, disable_pbar=True)

    cuda = args.device == "cuda"
    times = interleaved_times({name: sample(guider) for name, guider in runs.items()}, args.repeats, cuda)
    print(
        f"{args.size} 8-channel SD1.5 UNet, {image}×{image} px, {steps} euler steps, {device_label(cuda)}, "
        f"{args.repeats} rounds"
    )
    print_ratios(times, {"stock CFG": "stock-cfg"}, cuda)
    comfy.model_management.unload_all_models()
    return 0


if __name__ == "__main__":
    sys.exit(main())
