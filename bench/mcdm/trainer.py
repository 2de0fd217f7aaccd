"""MCDM Trainer: step time against the stock TrainLoraNode on the same model, and (``--learn``) whether training
performs the edit on held-out pairs.

Step time: the same SD1.5-layout model (``--model tiny``: the 1.6 M-parameter UNet of tests/mcdm_synthetic.py;
``--model sd15``: the tiny SD1.5 stand-in checkpoint, 44 M parameters, fp16 file), the same latent size and batch;
MCDM Trainer fine-tunes the full UNet (8-channel conv_in, adapter, 127-token context) with AdamW, TrainLoraNode
trains a rank-8 LoRA with AdamW. Rounds are interleaved; each round times every optimiser step after the first
(warm-up) and the medians are compared.

Learning (``--learn STEPS``): synthetic pairs (a shape recoloured red → blue, background kept; tests/mcdm_synthetic.py)
train a tiny MCDM (``--channels`` wide) through the cell-colour VAE (harness/tiny_models.py ``cell_vae``: a latent cell
is the 8×8 cell's mean colour at unit scale, so latents and decoded images read as colours); checkpoints at a quarter,
half, three quarters and the end are sampled (deterministic DDIM, 10 steps, no guidance) on held-out sources and
compared with x_B: latent MSE overall, on the cells the edit does not change and on the cells it changes (against x_B
and x_A), then in image space the mean colour of the shape's cells and the background's mean |change| from x_A.

    .venv/bin/python bench/mcdm/trainer.py                                    # tiny UNet, 64 px pairs, CPU
    .venv/bin/python bench/mcdm/trainer.py --preset full --device cuda        # the SD1.5 stand-in, 256 px pairs
    .venv/bin/python bench/mcdm/trainer.py --learn 500 --batch 16
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.append(str(REPO))
sys.path.append(str(REPO / "tests"))

from bench.common import parser, start  # noqa: E402

SD15 = "v1-5-pruned-emaonly-fp16.safetensors"
PRESET_MODEL = {"tiny": ("tiny", 64), "full": ("sd15", 256)}


def world(base: Path):
    from harness.comfy_env import bootstrap
    from harness.tiny_models import ensure_models

    bootstrap(base / "comfy")
    ensure_models(base / "comfy" / "models")
    from mcdm_helpers import save_tiny_vit_b32

    import nodes
    from precise_edit.core.deltaedit.joint_clip import load_joint_clip
    from precise_edit.nodes.deltaedit.joint_clip_model import JointClipModel, tokenizer_folder

    model, clip, vae = nodes.CheckpointLoaderSimple().load_checkpoint(SD15)[:3]
    joint = JointClipModel(load_joint_clip(save_tiny_vit_b32(base / "vit"), tokenizer_folder(), "tiny-vit-b32"))
    return model, clip, vae, joint


def mcdm_step_times(model, clip, vae, joint, folder: Path, *, steps: int, batch: int) -> list[float]:
    from precise_edit.core.mcdm import training as mcdm_training
    from precise_edit.nodes.mcdm.nodes_train import NULL_GUIDER, MCDMTrainer

    stamps: list[float] = []
    original = mcdm_training.MCDMTraining.step

    def timed(self):
        start = time.perf_counter()
        loss = original(self)
        stamps.append(time.perf_counter() - start)
        return loss

    mcdm_training.MCDMTraining.step = timed
    try:
        MCDMTrainer.execute(
            model,
            clip,
            vae,
            folder.name,  # pairs folders are named relative to ComfyUI's input (or output) directory
            steps,
            batch,
            1e-4,
            0,
            0,
            "bench",
            NULL_GUIDER,
            "fp32",
            False,
            "",
            joint_clip=joint,
        )
    finally:
        mcdm_training.MCDMTraining.step = original
    return stamps[1:]


def lora_step_times(model, clip, latents: torch.Tensor, *, steps: int, batch: int) -> list[float]:
    import comfy_extras.nodes_train as train

    stamps: list[float] = []
    original = train.TrainSampler.fwd_bwd

    def timed(self, *args, **kwargs):
        start = time.perf_counter()
        out = original(self, *args, **kwargs)
        stamps.append(time.perf_counter() - start)
        return out

    positive = clip.encode_from_tokens_scheduled(clip.tokenize("a blue shape"))
    train.TrainSampler.fwd_bwd = timed
    try:
        train.TrainLoraNode.execute(
            [model],
            [{"samples": latent[None]} for latent in latents],
            [positive],
            [batch],
            [1],
            [steps],
            [1e-4],
            [8],
            ["AdamW"],
            ["MSE"],
            [0],
            ["fp32"],
            ["fp32"],
            ["LoRA"],
            [False],
            ["[None]"],
        )
    finally:
        train.TrainSampler.fwd_bwd = original
    # the optimiser step runs after fwd_bwd inside the sampler loop; fwd_bwd is forward + backward
    return stamps[1:]


def bench_steps(bench, base: Path) -> None:
    from mcdm_synthetic import make_pairs, tiny_base_model, write_pairs_folder

    args = bench.args
    sd15_model, clip, vae, joint = world(base)
    model = tiny_base_model() if args.model == "tiny" else sd15_model
    pairs = make_pairs(8, args.size, seed=1)
    folder = write_pairs_folder(base / "comfy" / "input" / "pairs", pairs)
    latents = torch.randn(8, 4, args.size // 8, args.size // 8)
    times: dict[str, list[float]] = {"MCDM full UNet": [], "TrainLoraNode rank 8": []}
    for _ in range(args.repeats):
        with torch.inference_mode():
            times["TrainLoraNode rank 8"] += lora_step_times(model, clip, latents, steps=args.steps, batch=args.batch)
            times["MCDM full UNet"] += mcdm_step_times(
                model, clip, vae, joint, folder, steps=args.steps, batch=args.batch
            )
    lora = statistics.median(times["TrainLoraNode rank 8"])
    print(f"model {args.model}, {args.size}px pairs ({args.size // 8}² latents), batch {args.batch}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:22} median step {median * 1000:8.1f} ms   ratio to LoRA {median / lora:.2f}  (n={len(values)})")
        bench.record(name, "wall", median, {"LoRA": median / lora})
    print("(LoRA: forward + backward of TrainSampler.fwd_bwd; MCDM: forward + backward + clip + AdamW step)")


def bench_learning(args, base: Path) -> None:
    _, clip, _, joint = world(base)
    import nodes

    vae = nodes.VAELoader().load_vae("tiny-cell-vae.safetensors")[0]
    from mcdm_synthetic import (
        SOURCE_COLOUR,
        TARGET_COLOUR,
        edit_scores,
        make_pairs,
        tiny_base_model,
        write_pairs_folder,
    )

    from precise_edit.nodes.mcdm.model_file import load_mcdm, mcdm_from_base_model
    from precise_edit.nodes.mcdm.nodes_train import NULL_GUIDER, MCDMTrainer, checked_vision

    model = tiny_base_model(channels=args.channels)
    folder = write_pairs_folder(base / "comfy" / "input" / "pairs", make_pairs(args.pairs, args.size, seed=1))
    held_out = make_pairs(8, args.size, seed=2)
    with torch.inference_mode():
        untrained = mcdm_from_base_model(model, seed=0)
        vision = checked_vision(joint, untrained, "joint_clip")
        rows = [("untrained", edit_scores(untrained.with_vision(vision), vae, clip, held_out))]
        start = time.perf_counter()
        every = max(1, args.learn // 4)
        MCDMTrainer.execute(
            model,
            clip,
            vae,
            folder.name,  # pairs folders are named relative to ComfyUI's input (or output) directory
            args.learn,
            args.batch,
            args.lr,
            0,
            every,
            "learn",
            NULL_GUIDER,
            "fp32",
            False,
            "",
            joint_clip=joint,
        )
        elapsed = time.perf_counter() - start
        import folder_paths

        checkpoints = sorted(
            Path(folder_paths.get_folder_paths("mcdm")[0]).glob("checkpoints/learn_*_step_*.safetensors")
        )
        for path in checkpoints:
            step = int(path.stem.rsplit("_", 1)[1])
            rows.append((f"step {step}", edit_scores(load_mcdm(path).with_vision(vision), vae, clip, held_out)))
    from precise_edit.nodes.mcdm.nodes_train import encode_images

    with torch.no_grad():
        source = encode_images(vae, untrained, held_out.sources)
        target = encode_images(vae, untrained, held_out.targets)
    print(
        f"{args.pairs} training pairs, 8 held-out, {args.size}px, batch {args.batch}, lr {args.lr}: "
        f"{args.learn} steps in {elapsed:.0f} s"
    )
    no_edit = float(((source - target) ** 2).mean())
    print(f"reference: Var(z_B) {float(target.var()):.4f}, MSE(z_A, z_B) 'no edit' {no_edit:.4f}")
    floor = rows[0][1].background_floor
    print(f"colours: x_A shape {SOURCE_COLOUR}, x_B shape {TARGET_COLOUR}; VAE round trip, background {floor:.4f}")
    print(
        f"{'':12} {'MSE to z_B':>11} {'background':>11} {'edited→z_B':>11} {'edited→z_A':>11}"
        f"   {'shape colour (RGB)':>20} {'background |Δ|':>15}"
    )
    for name, s in rows:
        colour = "(" + ", ".join(f"{c:.2f}" for c in s.shape_colour) + ")"
        print(
            f"{name:12} {s.mse:11.4f} {s.background:11.4f} {s.edited_to_target:11.4f} {s.edited_to_source:11.4f}"
            f"   {colour:>20} {s.background_change:15.4f}"
        )


def main(argv: list[str] | None = None) -> int:
    arguments = parser(__doc__.splitlines()[0], repeats=3)
    arguments.add_argument("--model", choices=["tiny", "sd15"], help="default: the preset's")
    arguments.add_argument("--size", type=int, default=0, help="pair image size in pixels (0: the preset's)")
    arguments.add_argument("--batch", type=int, default=4)
    arguments.add_argument("--steps", type=int, default=6, help="optimiser steps per round (step time)")
    arguments.add_argument("--learn", type=int, default=0, help="train this many steps and score the edit instead")
    arguments.add_argument("--pairs", type=int, default=16)
    arguments.add_argument("--channels", type=int, default=64, help="UNet width of the --learn model")
    arguments.add_argument("--lr", type=float, default=1e-3)
    bench = start(__file__, arguments.parse_args(argv))
    args = bench.args
    model, size = PRESET_MODEL[bench.preset.name]
    args.model, args.size = args.model or model, args.size or size
    with tempfile.TemporaryDirectory() as base:
        if args.learn:
            bench_learning(args, Path(base))
        else:
            bench_steps(bench, Path(base))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
