"""ZONE's Region-IoU + FFT edge smoother: our torch implementation against a NumPy/OpenCV one of the released steps.

One synthetic scene (1024² with the full preset, the same scene at 512² with tiny): 200 blob-shaped segments (SAM
"everything" style, bool), a rough edit mask with ragged edges and specks, an original image and an edited one (object
recoloured, background slightly changed as InstructPix2Pix does). Both implementations get the same data in their
native form (bool arrays and uint8 images for the released steps, bool tensors and float images for ours) and the
same settings (the released ones scaled to the image; at 1024 px: dilation 8, D₀ 400, 41 × 41 closing, threshold 30,
α 0.6). Runs alternate between the two in one process; the script prints the median CPU and wall time of each and
the ratios (target: ours ≥ 5× faster on CPU), and how far the two final masks agree.

Threads: by default torch and OpenCV get one thread each (NumPy's FFT is single-threaded anyway), which compares the
algorithms rather than the core count; with one thread the process CPU time is also immune to other jobs taking turns
on a shared machine. ``--threads 0`` leaves the libraries' defaults. On a GPU only the wall time means anything.

    .venv/bin/python bench/zone/compositing.py                                # 512² scene, CPU
    .venv/bin/python bench/zone/compositing.py --preset full --device cuda    # 1024², ours on a GPU (reference: CPU)

The reference needs ``opencv-python-headless`` (requirements-dev.txt; never a runtime dependency of the pack).
"""

import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import scipy.ndimage as ndi
import torch

sys.path.append(str(Path(__file__).resolve().parents[2]))

from bench.common import parser, start  # noqa: E402
from harness.comfy_env import ensure_pack_importable  # noqa: E402

ensure_pack_importable()

from precise_edit.core.zone.fft_edge_smoother import SmootherSettings, smooth_and_composite  # noqa: E402
from precise_edit.core.zone.region_iou import select_region  # noqa: E402

SIZE = 1024
SEGMENTS = 200
OBJECT = 17
PRESET_SIZE = {"tiny": 512, "full": SIZE}


def scene(size: int = SIZE, count: int = SEGMENTS, seed: int = 0) -> dict[str, np.ndarray]:
    """Segments [N, H, W] bool, rough mask [H, W] bool, original and edited [H, W, 3] uint8 (sizes in 1024ths)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32) * (SIZE / size)
    centres = rng.uniform(0, SIZE, (count, 2)).astype(np.float32)
    radii = rng.uniform(20, 300, (count, 2)).astype(np.float32)
    segments = np.empty((count, size, size), dtype=bool)
    for index, ((cy, cx), (ry, rx)) in enumerate(zip(centres, radii, strict=True)):
        segments[index] = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
    segments[OBJECT % count] = ((yy - 520) / 210) ** 2 + ((xx - 470) / 160) ** 2 < 1
    wobble = 12 * np.sin(xx / 9) * np.cos(yy / 13)
    rough = (((yy - 540 + wobble) / 190) ** 2 + ((xx - 480) / 150) ** 2 < 1) | (rng.random((size, size)) > 0.9995)
    texture = ndi.gaussian_filter(rng.random((size, size, 3)), (6, 6, 0))
    original = np.clip((texture - texture.min()) / np.ptp(texture) * 255, 0, 255).astype(np.uint8)
    edited = np.clip(original.astype(np.int16) + rng.integers(-3, 4, original.shape), 0, 255).astype(np.uint8)
    edited[segments[OBJECT % count]] = (200, 40, 30)
    return {"segments": segments, "rough": rough, "original": original, "edited": edited}


def released_filter_small_regions(mask: np.ndarray, region_thres: int) -> np.ndarray:
    """``filter_small_regions`` with the area (not area × label) compared, vectorised with bincount."""
    labels, _ = ndi.label(mask)
    areas = np.bincount(labels.ravel())
    keep = areas >= region_thres
    keep[0] = False
    return keep[labels]


def released_steps(data: dict[str, np.ndarray], settings: SmootherSettings) -> tuple[np.ndarray, np.ndarray]:
    """Region-IoU (``find_most_overlapping_segmentation``) and the FFT smoother (``subtract_fft_images`` + final
    blend of ``inference.py``) as the released code runs them, with the low-pass circle centred correctly."""
    rough = released_filter_small_regions(data["rough"], 64)
    best_iou, best = 0.0, None
    for segmentation in data["segments"]:
        intersection = np.sum(np.logical_and(rough, segmentation))
        union = np.sum(np.logical_or(rough, segmentation))
        iou = intersection / union
        if iou > best_iou:
            best_iou, best = iou, segmentation
    fine = released_filter_small_regions(best, 64).astype(np.uint8) * 255

    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
    dilated = cv2.dilate(fine, kernel, iterations=settings.dilation_radius)
    gt_edge, sty_edge = data["original"].copy(), data["edited"].copy()
    gt_edge[dilated == 0] = 0
    sty_edge[dilated == 0] = 0
    f1 = np.fft.fftshift(np.fft.fft2(cv2.cvtColor(sty_edge, cv2.COLOR_RGB2GRAY)))
    f2 = np.fft.fftshift(np.fft.fft2(cv2.cvtColor(gt_edge, cv2.COLOR_RGB2GRAY)))
    rows, cols = fine.shape
    circle = np.zeros((rows, cols), np.uint8)
    cv2.circle(circle, (cols // 2, rows // 2), round(settings.low_pass_radius), 1, -1)
    image = np.abs(np.fft.ifft2(np.fft.ifftshift(f1 * circle - f2 * circle))).astype(np.uint8)
    binary = np.where(image > settings.threshold, 255, 0).astype(np.uint8)
    side = 2 * settings.closing_radius + 1
    closed = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, np.ones((side, side), np.uint8))
    contours, _ = cv2.findContours(closed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    edge = cv2.drawContours(np.zeros_like(closed), contours, -1, 255, cv2.FILLED)

    original, edited = data["original"], data["edited"]
    band = edge != fine
    out = original.copy()
    out[edge > 0] = edited[edge > 0]
    out[band] = edited[band] * settings.alpha + original[band] * (1 - settings.alpha)
    return (edge > 0) | (fine > 0), out


def ours(tensors: dict[str, torch.Tensor], settings: SmootherSettings) -> tuple[torch.Tensor, torch.Tensor]:
    selection = select_region(tensors["rough"], tensors["segments"], min_region_area=64)
    result = smooth_and_composite(tensors["original"], tensors["edited"], selection.mask, settings)
    return result.final_mask, result.composite


def timed(function, *args, sync=lambda: None) -> tuple[float, float]:
    """(process CPU seconds, wall seconds) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    function(*args)
    sync()
    return time.process_time() - cpu, time.perf_counter() - wall


def main(argv: list[str] | None = None) -> int:
    bench = start(__file__, parser(__doc__.splitlines()[0], repeats=7).parse_args(argv), comfy=False)
    args = bench.args
    if args.threads:
        cv2.setNumThreads(args.threads)
    size = PRESET_SIZE[bench.preset.name]
    settings = SmootherSettings().scaled(size, size)
    data = scene(size=size)
    device = bench.device
    tensors = {
        "segments": torch.from_numpy(data["segments"]).to(device),
        "rough": torch.from_numpy(data["rough"])[None].to(device),
        "original": (torch.from_numpy(data["original"]).float() / 255)[None].to(device),
        "edited": (torch.from_numpy(data["edited"]).float() / 255)[None].to(device),
    }
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    reference_mask, _ = released_steps(data, settings)
    our_mask, _ = ours(tensors, settings)
    ours_np = our_mask[0].cpu().numpy()
    agreement = (ours_np & reference_mask).sum() / (ours_np | reference_mask).sum()
    print(f"final masks: ours {ours_np.sum()} px, released steps {reference_mask.sum()} px, IoU {agreement:.4f}")

    names = ("released (NumPy/OpenCV)", f"ours (torch, {device})")
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    timed(ours, tensors, settings, sync=sync)
    for _ in range(args.repeats):
        times[names[0]].append(timed(released_steps, data, settings))
        times[names[1]].append(timed(ours, tensors, settings, sync=sync))
    threads = f"torch {torch.get_num_threads()} / OpenCV {cv2.getNumThreads()} threads"
    print(f"{SEGMENTS} segments, {size}×{size}, median of {args.repeats} rounds, {threads}")
    medians = {}
    for name, runs in times.items():
        medians[name] = [statistics.median(run[kind] for run in runs) for kind in (0, 1)]
        cpu, wall = medians[name]
        print(f"  {name:28s} CPU {cpu * 1000:7.1f} ms   wall {wall * 1000:7.1f} ms")
    (reference_cpu, reference_wall), (our_cpu, our_wall) = medians.values()
    print(f"  speed-up (released / ours): CPU {reference_cpu / our_cpu:.2f}×   wall {reference_wall / our_wall:.2f}×")
    for name, (cpu, wall) in medians.items():
        bench.record(name, "wall", wall, {"released": wall / reference_wall})
        bench.record(name, "cpu", cpu, {"released": cpu / reference_cpu})
    return 0


if __name__ == "__main__":
    sys.exit(main())
