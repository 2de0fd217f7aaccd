"""Timing variants against a stock baseline in one process: warm-up, interleaved rounds, median ratios.

Every variant runs once to warm up, then ``repeats`` rounds each run every variant once, starting one variant later
each round, so a slow phase of a shared machine falls on all of them alike. Wall time is printed, and on the CPU
the process CPU time too, which holds better when other processes load the machine.
"""

import statistics
import time
from collections.abc import Callable, Mapping

import torch

Clocks = tuple[float, float]


def timed(run: Callable[[], object], cuda: bool) -> Clocks:
    """``(wall, cpu)`` seconds of one call of ``run`` (synchronising the GPU when ``cuda``)."""
    start, start_cpu = time.perf_counter(), time.process_time()
    run()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start, time.process_time() - start_cpu


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


def device_label(cuda: bool) -> str:
    return torch.cuda.get_device_name() if cuda else f"CPU ({torch.get_num_threads()} threads)"


def print_ratios(times: Mapping[str, list[Clocks]], baselines: Mapping[str, str], cuda: bool) -> None:
    """One line per variant and clock: its median and its ratio to each baseline (``{label: variant}``)."""
    width = max(len(name) for name in times)
    for clock, label in ((0, "wall"), (1, "cpu")):
        if clock == 1 and cuda:
            break
        medians = {name: statistics.median(t[clock] for t in values) for name, values in times.items()}
        for name, median in medians.items():
            ratios = "   ".join(
                f"ratio to {base} {median / medians[variant]:.3f}" for base, variant in baselines.items()
            )
            print(f"{label:4} {name:{width}} median {median * 1000:9.1f} ms   {ratios}")
