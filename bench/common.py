"""What every bench shares: one command line, one set-up, one SD1.5 UNet builder, the interleaved timer, one report.

Each script in ``bench/`` declares its variants (callables that do the work once) and the line that says what they
are, then calls :func:`compare`; this module times them and prints, for each variant, its median wall time (and on
the CPU its process CPU time, which other processes on a shared machine disturb less) and its ratio to the stock
baseline. With ``--table FILE`` every printed figure is also appended to FILE as one JSON line, which
``bench/run_all.py`` gathers into one table for all benches.

Timing: every variant runs once to warm up, then ``--repeats`` rounds each run every variant once, starting one
variant later each round, so a slow phase of a shared machine falls on all of them alike.

Presets: ``tiny`` (the tests' tiny SD1.5 UNet at 128 px: seconds on two CPU cores) and ``full`` (the real SD1.5 UNet
at 512 px: for a GPU, ``--device cuda``). On the CPU torch gets one thread unless ``--threads`` says otherwise: one
thread compares the algorithms rather than the core count, and its CPU time is immune to other jobs taking turns.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))

from harness.comfy_env import ensure_pack_importable, setup_imports  # noqa: E402
from harness.tiny_models import SD15_UNET, random_unet  # noqa: E402

# The real SD1.5 UNet: four levels (attention on the first three), two res blocks per level.
FULL_SD15_UNET = {
    **SD15_UNET,
    "num_res_blocks": [2, 2, 2, 2],
    "channel_mult": [1, 2, 4, 4],
    "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
    "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
}

Clocks = tuple[float, float]


@dataclass(frozen=True)
class Preset:
    """A bench size: the image side in pixels, the sampling steps and the SD1.5 UNet configuration."""

    name: str
    image: int
    steps: int
    unet: dict[str, Any]

    @property
    def latent(self) -> int:
        """The latent side (image / 8)."""
        return self.image // 8


PRESETS = {
    "tiny": Preset("tiny", image=128, steps=4, unet=SD15_UNET),
    "full": Preset("full", image=512, steps=20, unet=FULL_SD15_UNET),
}


@dataclass(frozen=True)
class Bench:
    """A started bench: its name (the script's path under bench/, e.g. ``zone/locator``), parsed arguments, preset
    and device."""

    name: str
    args: argparse.Namespace
    preset: Preset

    @property
    def cuda(self) -> bool:
        return self.args.device == "cuda"

    @property
    def device(self) -> torch.device:
        return torch.device(self.args.device)

    def device_label(self) -> str:
        return torch.cuda.get_device_name() if self.cuda else f"CPU ({torch.get_num_threads()} threads)"

    def synchronize(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def record(self, variant: str, clock: str, seconds: float, ratios: Mapping[str, float] | None = None) -> None:
        """Append one figure to ``--table`` (a no-op without it)."""
        if not self.args.table:
            return
        row = {
            "bench": self.name,
            "preset": self.preset.name,
            "device": self.device_label(),
            "variant": variant,
            "clock": clock,
            "ms": round(seconds * 1000, 3),
            "ratios": {base: round(value, 4) for base, value in (ratios or {}).items()},
        }
        with open(self.args.table, "a", encoding="utf-8") as table:
            table.write(json.dumps(row) + "\n")


def parser(description: str, repeats: int = 5) -> argparse.ArgumentParser:
    """The command line every bench takes; a script adds its own options to it."""
    arguments = argparse.ArgumentParser(description=description)
    arguments.add_argument("--preset", choices=list(PRESETS), default="tiny", help="tiny (CPU) or full (SD1.5, GPU)")
    arguments.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    arguments.add_argument("--repeats", type=int, default=repeats, help="timed rounds after one warm-up")
    arguments.add_argument(
        "--threads", type=int, default=1, help="torch threads on the CPU (default 1; 0 keeps torch's default)"
    )
    arguments.add_argument("--table", type=Path, default=None, help="append every figure to this JSON-lines file")
    return arguments


def start(script: str, args: argparse.Namespace, comfy: bool = True) -> Bench:
    """Set the threads, make the pack importable and (with ``comfy``) ComfyUI too, in CPU mode unless on CUDA."""
    name = Path(script).resolve().relative_to(REPO / "bench").with_suffix("").as_posix()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"{name}: --device cuda, but torch sees no CUDA device")
    if args.device == "cpu" and args.threads:
        torch.set_num_threads(args.threads)
    ensure_pack_importable()
    if comfy:
        setup_imports(cpu=args.device == "cpu")
        import comfy.model_management  # noqa: F401  (fixes the device now; a later bootstrap() keeps it)
    return Bench(name, args, PRESETS[args.preset])


def unet_config(preset: Preset, in_channels: int = 4) -> dict[str, Any]:
    """The preset's SD1.5 UNet configuration with ``in_channels`` input channels (8 for InstructPix2Pix, MCDM)."""
    return {**preset.unet, "in_channels": in_channels}


def sd15_unet(preset: Preset, in_channels: int = 4):
    """A ModelPatcher for a random SD1.5-layout UNet, loaded the way UNETLoader loads one, with ComfyUI's detection
    checked: SD15 with 4 input channels, SD15 InstructPix2Pix with 8."""
    import comfy.sd

    expected = {4: "SD15", 8: "SD15_instructpix2pix"}[in_channels]
    model = comfy.sd.load_diffusion_model_state_dict(random_unet(unet_config(preset, in_channels), seed=0).state_dict())
    detected = None if model is None else type(model.model).__name__
    if detected == "BaseModel" and in_channels == 4:
        detected = type(model.model.model_config).__name__
    if detected != expected:
        raise RuntimeError(f"ComfyUI detected the bench UNet as {detected}, not {expected}")
    return model


def timed(run: Callable[[], object], cuda: bool) -> Clocks:
    """``(wall, cpu)`` seconds of one call of ``run`` (synchronising the GPU when ``cuda``)."""
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    run()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start_wall, time.process_time() - start_cpu


def interleaved_times(runs: Mapping[str, Callable[[], object]], repeats: int, cuda: bool) -> dict[str, list[Clocks]]:
    """Each variant's ``(wall, cpu)`` times over ``repeats`` interleaved rounds, after one warm-up call each."""
    for run in runs.values():
        run()
    times: dict[str, list[Clocks]] = {name: [] for name in runs}
    names = list(runs)
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(timed(runs[name], cuda))
    return times


def report(bench: Bench, times: Mapping[str, list[Clocks]], baselines: Mapping[str, str]) -> None:
    """One line per variant and clock: its median and its ratio to each baseline (``{label: variant}``)."""
    width = max(len(name) for name in times)
    for clock, label in ((0, "wall"), (1, "cpu")):
        if clock == 1 and bench.cuda:
            break
        medians = {name: statistics.median(t[clock] for t in values) for name, values in times.items()}
        for name, median in medians.items():
            ratios = {base: median / medians[variant] for base, variant in baselines.items()}
            text = "   ".join(f"ratio to {base} {value:.3f}" for base, value in ratios.items())
            print(f"{label:4} {name:{width}} median {median * 1000:9.1f} ms   {text}")
            bench.record(name, label, median, ratios)


def compare(
    bench: Bench, description: str, runs: Mapping[str, Callable[[], object]], baselines: Mapping[str, str]
) -> dict[str, list[Clocks]]:
    """Time ``runs`` interleaved, print ``description`` (what was run, on what) and the medians and ratios."""
    times = interleaved_times(runs, bench.args.repeats, bench.cuda)
    print(f"{description}, {bench.device_label()}, {bench.args.repeats} rounds")
    report(bench, times, baselines)
    return times


def random_conditioning(count: int, seed: int = 0, tokens: int = 77, width: int = 768) -> list[torch.Tensor]:
    """``count`` random text embeddings [1, tokens, width] from one seeded generator (the speed of a UNet call does
    not depend on the values)."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(1, tokens, width, generator=generator) for _ in range(count)]


def unload() -> None:
    """Free ComfyUI's loaded models at the end of a bench."""
    import comfy.model_management

    comfy.model_management.unload_all_models()
