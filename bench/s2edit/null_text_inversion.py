"""Cost of Null-Text Inversion against one stock sampling pass of the same model.

On a random-weight SD1.5 UNet with random text embeddings, for a random source latent:
- stock: one KSampler-style pass (euler, normal schedule, CFG at the same guidance, the same number of steps);
- null-text: DDIM inversion plus null-text optimisation (early stopping at --epsilon), then the replay;
- fast: negative-prompt inversion (no optimisation), then the replay;
- plain: DDIM inversion replayed with the negative prompt as it is (the baseline null-text inversion improves on).
It prints UNet evaluations (per image, forward passes), backward passes, times and their ratios to the stock
pass. Null text starts near the prompt's embedding (the tests explain why random weights call for that); early
stopping depends on the losses, which random weights keep far above a trained model's.

    .venv/bin/python bench/s2edit/null_text_inversion.py                                     # tiny SD1.5 UNet, CPU
    .venv/bin/python bench/s2edit/null_text_inversion.py --preset full --device cuda       # full-size SD1.5 UNet, 512²
"""

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.append(str(Path(__file__).resolve().parents[2]))

from bench.common import parser, random_conditioning, sd15_unet, start, timed, unload  # noqa: E402

DDIM_STEPS = {"tiny": 10, "full": 50}


def main(argv: list[str] | None = None) -> int:
    arguments = parser(__doc__.splitlines()[0], repeats=1)
    arguments.add_argument("--steps", type=int, default=0, help="DDIM steps (0: 10 tiny, 50 full)")
    arguments.add_argument("--inner", type=int, default=10, help="null-text optimisation steps per DDIM step")
    arguments.add_argument("--epsilon", type=float, default=1e-5, help="early-stopping loss")
    arguments.add_argument("--guidance", type=float, default=7.5)
    bench = start(__file__, arguments.parse_args(argv))
    args = bench.args
    import comfy.sample

    from precise_edit.nodes.s2edit.inversion import NEGATIVE_PROMPT, NULL_TEXT, PLAIN_DDIM, invert, reconstruct

    preset = bench.preset
    model = sd15_unet(preset)
    steps, guidance = args.steps or DDIM_STEPS[preset.name], args.guidance
    prompt, offset = random_conditioning(2)
    positive = [[prompt, {}]]
    negative = [[prompt + 0.3 * offset, {}]]
    g = torch.Generator().manual_seed(1)
    source = torch.randn(1, 4, preset.latent, preset.latent, generator=g) / model.model.latent_format.scale_factor
    noise = comfy.sample.prepare_noise(source, 0)

    def stock():
        return comfy.sample.sample(
            model, noise, steps, guidance, "euler", "normal", positive, negative, source * 0, disable_pbar=True
        )

    def inversion(mode: str):
        return invert(
            model,
            positive,
            negative,
            source,
            steps=steps,
            guidance=guidance,
            inner_steps=args.inner,
            epsilon=args.epsilon,
            mode=mode,
        )

    def median_seconds(run) -> tuple[object, float]:
        """The last result of ``run`` and its median wall time over ``--repeats`` calls."""
        walls, result = [], None
        for _ in range(max(1, args.repeats)):
            start_wall = time.perf_counter()
            result = run()
            bench.synchronize()
            walls.append(time.perf_counter() - start_wall)
        return result, statistics.median(walls)

    with torch.inference_mode():
        stock()
        stock_time = statistics.median(timed(stock, bench.cuda)[0] for _ in range(max(1, args.repeats)))
        rows = []
        for name, mode in (("null-text", NULL_TEXT), ("fast", NEGATIVE_PROMPT), ("plain", PLAIN_DDIM)):
            result, invert_time = median_seconds(lambda mode=mode: inversion(mode))
            replay, replay_time = median_seconds(lambda result=result: reconstruct(model, result, positive))
            rows.append((name, result, invert_time, replay_time, float((replay - source).square().mean())))

    print(
        f"{preset.name} SD1.5 UNet, {preset.image}² px, {steps} steps, guidance {guidance}, {bench.device_label()}; "
        f"source latent variance {float(source.var()):.1f}"
    )
    print(f"stock sampling pass: {2 * steps} UNet evaluations, {stock_time:.2f} s")
    bench.record("stock", "wall", stock_time, {"stock": 1.0})
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
        bench.record(f"{name} inversion", "wall", invert_time, {"stock": invert_time / stock_time})
        bench.record(f"{name} replay", "wall", replay_time, {"stock": replay_time / stock_time})
    unload()
    return 0


if __name__ == "__main__":
    sys.exit(main())
