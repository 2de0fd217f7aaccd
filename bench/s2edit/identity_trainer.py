"""Step time of the S2Edit Identity Token Trainer against the stock Train LoRA node on the same model and rank.

Both train on the tiny SD1.5 checkpoint (44 M-parameter UNet, full-size random CLIP-L) from one image's latent:
- stock: ComfyUI's TrainLoraNode (LoRA on every linear/conv layer plus bias deltas, fp32, batch 1, AdamW);
- ours: identity training with the token + UNet LoRA (attention projections) only;
- ours+terms: plus the orthogonality term (λ 0.1) and spatial control (the token masked to the left half);
- ours+terms+TE: plus the text-encoder LoRA.
A step's time is the interval between two progress-bar updates (the first step, which includes set-up, is dropped);
the variants run interleaved round by round and the script prints each one's median step time and its ratio to
stock. Ours runs the text encoder forward and backward every step (the token's gradient passes through it); at
the tiny UNet's size that is a large share of a step, so use ``--image 512`` for the share of a real UNet at 512 px
(64×64 latent). Target ≤ 1.3 for ours+terms.

    .venv/bin/python bench/s2edit/identity_trainer.py                       # 128 px, CPU
    .venv/bin/python bench/s2edit/identity_trainer.py --preset full --device cuda    # 512 px
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.append(str(Path(__file__).resolve().parents[2]))

from bench.common import parser, start  # noqa: E402
from harness.comfy_env import bootstrap  # noqa: E402
from harness.tiny_models import ensure_models  # noqa: E402

RANK = 4
PROMPT = "a photo of a [I] lady with glasses"


def main(argv: list[str] | None = None) -> int:
    arguments = parser(__doc__.splitlines()[0], repeats=2)
    arguments.add_argument("--image", type=int, default=0, help="image side in pixels (0: the preset's)")
    arguments.add_argument("--steps", type=int, default=3, help="training steps per run (the first is dropped)")
    bench = start(__file__, arguments.parse_args(argv))
    args = bench.args
    args.image = args.image or bench.preset.image
    base = Path(tempfile.mkdtemp(prefix="pe_bench_identity_"))
    models = ensure_models(base / "models")
    bootstrap(base)
    import comfy.sd
    import comfy.utils
    import folder_paths
    from comfy_extras.nodes_train import TrainLoraNode

    from precise_edit.nodes.s2edit.identity_training import (
        SemanticControl,
        SpatialControl,
        Subject,
        TrainingSettings,
        train_identity,
    )

    path = folder_paths.get_full_path("checkpoints", next(n for n in models if n.startswith("tiny-sd15")))
    model, clip = comfy.sd.load_checkpoint_guess_config(path, output_vae=False, embedding_directory=[])[:2]
    latent = torch.randn(1, 4, args.image // 8, args.image // 8, generator=torch.Generator().manual_seed(0))
    positive = clip.encode_from_tokens_scheduled(clip.tokenize("a photo of a lady with glasses"))
    mask = torch.zeros(1, args.image, args.image)
    mask[:, :, : args.image // 2] = 1.0
    subject = Subject(
        placeholder="[I]",
        embedding_name="pe_bench",
        prompt=PROMPT,
        noun="lady",
        latents=latent,
        image_size=(args.image, args.image),
        mask=mask,
    )

    def timed(run) -> list[float]:
        stamps: list[float] = []
        hook = comfy.utils.PROGRESS_BAR_HOOK
        comfy.utils.set_progress_bar_global_hook(lambda *a, **k: stamps.append(time.perf_counter()))
        try:
            run()
        finally:
            comfy.utils.set_progress_bar_global_hook(hook)
        return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]

    def stock() -> None:
        TrainLoraNode.execute(
            [model],
            [{"samples": latent}, {"samples": latent}],  # one latent tensor trips the node (multi_res unset)
            [positive],
            [1],
            [args.steps],
            [1],
            [1e-4],
            [RANK],
            ["AdamW"],
            ["MSE"],
            [0],
            ["fp32"],
            ["fp32"],
            ["LoRA"],
            [False],
            ["[None]"],
        )

    def ours(semantic, spatial, text_encoder: bool):
        def run() -> None:
            progress = comfy.utils.ProgressBar(args.steps)
            settings = TrainingSettings(
                steps=args.steps,
                token_lr=5e-4,
                unet_lr=1e-4,
                text_encoder_lr=5e-5,
                rank=RANK,
                train_text_encoder=text_encoder,
                seed=0,
            )
            with torch.inference_mode(False), torch.enable_grad():
                train_identity(
                    model,
                    clip,
                    [subject],
                    settings,
                    semantic=semantic,
                    spatial=spatial,
                    on_step=lambda report: progress.update_absolute(report.step, args.steps),
                )

        return run

    terms = (SemanticControl(0.1, "eos_output_i_output"), SpatialControl(mask, 0.3))
    variants = {
        "stock TrainLoraNode": stock,
        "ours": ours(None, None, False),
        "ours+terms": ours(*terms, False),
        "ours+terms+TE": ours(*terms, True),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for round_index in range(args.repeats):
        for name in names[round_index % len(names) :] + names[: round_index % len(names)]:
            times[name].extend(timed(variants[name]))
    print(
        f"tiny SD1.5 (44 M UNet, 123 M CLIP-L), {args.image}² px, rank {RANK}, {args.steps} steps × "
        f"{args.repeats} rounds, {bench.device_label()}"
    )
    reference = statistics.median(times["stock TrainLoraNode"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:22} median step {median:8.3f} s   ratio to stock {median / reference:.3f}   (n={len(values)})")
        bench.record(name, "wall", median, {"stock": median / reference})
    return 0


if __name__ == "__main__":
    sys.exit(main())
