"""Cost of Null-Text Inversion against one stock sampling pass of the same model.

On a random-weight SD1.5 UNet with random text embeddings, for a random source latent:
- stock: one KSampler-style pass (euler, normal schedule, CFG at the same guidance, the same number of steps);
- null-text: DDIM inversion plus null-text optimisation (early stopping at --epsilon), then the replay;
- fast: negative-prompt inversion (no optimisation), then the replay;
- plain: DDIM inversion replayed with the negative prompt as it is (the baseline null-text inversion improves on).
It prints UNet evaluations (per image, forward passes), backward passes, times and their ratios to the stock
pass. Null text starts near the prompt's embedding (the tests explain why random weights call for that); early
stopping depends on the losses, which random weights keep far above a trained model's.

    .venv/bin/python bench/null_text_inversion.py                                   # tiny SD1.5 UNet, CPU
    .venv/bin/python bench/null_text_inversion.py --size full --device cuda         # full-size SD1.5 UNet, 512²
"""

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.append(str(Path(__file__).resolve().parents[1]))

from bench.attention_overhead import load_unet  # noqa: E402
from harness.comfy_env import setup_imports  # noqa: E402

IMAGE = {"tiny": 128, "full": 512}


def timed(function, device: str):
    start = time.perf_counter()
    result = function()
    if device == "cuda":
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=list(IMAGE), default="tiny")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--inner", type=int, default=10)
    parser.add_argument("--epsilon", type=float, default=1e-5)
    parser.add_argument("--guidance", type=float, default=7.5)
    args = parser.parse_args(argv)
    setup_imports(cpu=args.device == "cpu")
    import comfy.model_management
    import comfy.sample

    from precise_edit.nodes.inversion import NEGATIVE_PROMPT, NULL_TEXT, PLAIN_DDIM, invert, reconstruct

    model = load_unet(args.size)
    side = IMAGE[args.size] // 8
    g = torch.Generator().manual_seed(0)
    prompt = torch.randn(1, 77, 768, generator=g)
    positive = [[prompt, {}]]
    negative = [[prompt + 0.3 * torch.randn(1, 77, 768, generator=g), {}]]
    source = torch.randn(1, 4, side, side, generator=g) / model.model.latent_format.scale_factor
    noise = comfy.sample.prepare_noise(source, 0)
    steps, guidance = args.steps, args.guidance

    def stock():
        return comfy.sample.sample(
            model, noise, steps, guidance, "euler", "normal", positive, negative, source * 0, disable_pbar=True
        )

    def inversion(mode: str):
        return invert(model, positive, negative, source, steps, guidance, args.inner, args.epsilon, mode)

    with torch.inference_mode():
        stock()
        _, stock_time = timed(stock, args.device)
        rows = []
        for name, mode in (("null-text", NULL_TEXT), ("fast", NEGATIVE_PROMPT), ("plain", PLAIN_DDIM)):
            result, invert_time = timed(lambda mode=mode: inversion(mode), args.device)
            replay, replay_time = timed(lambda result=result: reconstruct(model, result, positive), args.device)
            rows.append((name, result, invert_time, replay_time, float((replay - source).square().mean())))

    device = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(
        f"{args.size} SD1.5 UNet, {side * 8}² px, {steps} steps, guidance {guidance}, {device}; "
        f"source latent variance {float(source.var()):.1f}"
    )
    print(f"stock sampling pass: {2 * steps} UNet evaluations, {stock_time:.2f} s")
    worst = steps + steps * (args.inner + 2)
    for name, result, invert_time, replay_time, error in rows:
        line = f"{name:9} inversion: {result.unet_evaluations:4d} UNet evaluations"
        optimisation = result.optimisation
        if optimisation is not None:
            stopped = sum(optimisation.early_stopped)
            line += (
                f" (worst case {worst}; {sum(optimisation.iterations)} of {steps * args.inner} inner iterations, "
                f"{optimisation.backward_passes} backward passes, {stopped}/{steps} steps stopped early, "
                f"losses {min(optimisation.losses):.2g}–{max(optimisation.losses):.2g})"
            )
        print(line)
        print(
            f"{'':9} inversion {invert_time:.2f} s = {invert_time / stock_time:.2f}× stock; replay {replay_time:.2f} s "
            f"= {replay_time / stock_time:.2f}× stock; reconstruction MSE {error:.3g}"
        )
    comfy.model_management.unload_all_models()
    return 0


if __name__ == "__main__":
    sys.exit(main())
