"""DeltaEdit's Delta Mapper: training throughput on cached embeddings, and the cost of applying an edit.

Training: 10,000 cached embeddings (random: the speed does not depend on the values) of a 512-d joint CLIP
(ViT-B/32, as the paper) and of a conditioning space of 768 (ViT-L/14, SD2.1 unCLIP-L) or 1024 channels (ViT-H/14,
unCLIP-H and IP-Adapter), and with ``--stylegan`` 6048 (the paper's S-space); batch 64 as the paper. Prints pairs
per second, the time for 10,000 pairs, and the relevance estimate the trainer runs once at the end.

Apply: one image's edit (mapper forward + threshold + add) against what ComfyUI spends anyway to get the
embedding: one CLIPVisionEncode of the same image with a stock ViT-L/14 configuration (random weights) in the same
process. The ratio is the edit's overhead on top of the encode.

Small mappers are overhead-bound and often faster on one thread (the default on the CPU).

    .venv/bin/python bench/deltaedit/delta_mapper.py                              # 20 timed steps per size, CPU
    .venv/bin/python bench/deltaedit/delta_mapper.py --preset full --device cuda  # 100 steps, the 6048-d mapper too
"""

import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.append(str(Path(__file__).resolve().parents[2]))

from bench.common import parser, start  # noqa: E402
from harness.comfy_env import ensure_pack_importable  # noqa: E402

ensure_pack_importable()

from precise_edit.core.deltaedit.clip_delta import DeltaDirection  # noqa: E402
from precise_edit.core.deltaedit.delta_edit import DeltaEditModel, apply_delta, predict_delta  # noqa: E402
from precise_edit.core.deltaedit.delta_mapper import DeltaMapper, DeltaMapperConfig  # noqa: E402
from precise_edit.core.deltaedit.delta_relevance import estimate_relevance  # noqa: E402
from precise_edit.core.deltaedit.delta_training import code_scale, train_delta_mapper  # noqa: E402

CLIP_DIM = 512
PAIRS = 10_000
BATCH = 64
TARGETS = {"ViT-L/14 (768)": 768, "ViT-H/14 (1024)": 1024}
STYLEGAN = {"StyleGAN S (6048)": 6048}
PRESET_STEPS = {"tiny": 20, "full": 100}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def mapper_for(target_dim: int, device: torch.device) -> DeltaMapper:
    config = (
        DeltaMapperConfig.stylegan_s_space(CLIP_DIM)
        if target_dim == 6048
        else DeltaMapperConfig.for_target(target_dim, CLIP_DIM)
    )
    return DeltaMapper(config, generator=torch.Generator().manual_seed(0)).to(device)


def training_throughput(target_dim: int, steps: int, device: torch.device) -> dict[str, float]:
    generator = torch.Generator().manual_seed(1)
    codes = torch.randn(PAIRS, target_dim, generator=generator)
    clip = torch.randn(PAIRS, CLIP_DIM, generator=generator)
    mapper = mapper_for(target_dim, device)
    scale = code_scale(codes)
    train_delta_mapper(mapper, codes, clip, steps=3, batch_size=BATCH, learning_rate=0.5, seed=0, scale=scale)
    synchronize(device)
    start = time.perf_counter()
    train_delta_mapper(mapper, codes, clip, steps=steps, batch_size=BATCH, learning_rate=0.5, seed=0, scale=scale)
    synchronize(device)
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    estimate_relevance(codes, clip)
    relevance_seconds = time.perf_counter() - start
    pairs_per_second = steps * BATCH / seconds
    return {"pairs_per_s": pairs_per_second, "epoch_s": PAIRS / pairs_per_second, "relevance_s": relevance_seconds}


def apply_latency(target_dim: int, repeats: int, device: torch.device) -> float:
    """Median seconds of one image's edit: mapper forward, threshold, s + Δs."""
    mapper = mapper_for(target_dim, device)
    relevance = F.normalize(torch.randn(target_dim, CLIP_DIM), dim=1).to(device)
    model = DeltaEditModel(
        mapper=mapper, code_scale=1.0, relevance=relevance, clip_fingerprint="", target_fingerprint=""
    )
    raw = 0.2 * F.normalize(torch.randn(CLIP_DIM), dim=0).to(device)
    direction = DeltaDirection(
        raw=raw, unit=raw / raw.norm(), source="face", target="face with smile", kind="text", clip_fingerprint=""
    )
    codes, clip = torch.randn(1, target_dim, device=device), torch.randn(1, CLIP_DIM, device=device)
    times = []
    for _ in range(repeats + 3):
        synchronize(device)
        start = time.perf_counter()
        apply_delta(codes, predict_delta(model, codes, clip, direction, threshold=0.03), 1.0)
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[3:])


def clip_vision_encode_seconds(repeats: int, device: torch.device) -> float:
    """Median seconds of a stock-config ViT-L/14 CLIPVisionEncode of one 512² image (random weights), on ComfyUI's
    device for ``device`` (the GPU for cuda, else the CPU)."""
    from harness.comfy_env import setup_imports

    setup_imports(cpu=device.type == "cpu")
    import comfy.clip_vision

    config = Path(comfy.clip_vision.__file__).parent / "clip_vision_config_vitl.json"
    clip_vision = comfy.clip_vision.ClipVisionModel(str(config))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in clip_vision.model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)
    image = torch.rand(1, 512, 512, 3, generator=generator)
    times = []
    with torch.inference_mode():
        for _ in range(repeats + 1):
            start = time.perf_counter()
            clip_vision.encode_image(image, crop=True)
            synchronize(device)
            times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main(argv: list[str] | None = None) -> int:
    arguments = parser(__doc__.splitlines()[0], repeats=30)
    arguments.add_argument("--steps", type=int, default=0, help="timed training steps per size (0: the preset's)")
    arguments.add_argument("--skip-encode", action="store_true", help="do not time the ViT-L CLIPVisionEncode")
    arguments.add_argument("--stylegan", action="store_true", help="also the paper's 6048-d mapper (full: always)")
    bench = start(__file__, arguments.parse_args(argv), comfy=False)
    args, device = bench.args, bench.device
    steps = args.steps or PRESET_STEPS[bench.preset.name]
    stylegan = args.stylegan or bench.preset.name == "full"
    print(f"{bench.device_label()}, batch {BATCH}, joint CLIP {CLIP_DIM}-d, {steps} timed steps per size")
    print(f"{'target':<20}{'pairs/s':>10}{'10k pairs (s)':>15}{'relevance (s)':>15}{'edit (ms)':>11}")
    edits = {}
    for name, dim in (TARGETS | STYLEGAN if stylegan else TARGETS).items():
        train = training_throughput(dim, steps, device)
        edits[name] = apply_latency(dim, args.repeats, device)
        print(
            f"{name:<20}{train['pairs_per_s']:>10.0f}{train['epoch_s']:>15.2f}{train['relevance_s']:>15.2f}"
            f"{edits[name] * 1000:>11.2f}"
        )
        bench.record(f"{name}: 10k training pairs", "wall", train["epoch_s"])
        bench.record(f"{name}: one edit", "wall", edits[name])
    if not args.skip_encode:
        encode = clip_vision_encode_seconds(max(3, args.repeats // 10), device)
        print(f"stock CLIPVisionEncode, ViT-L/14 config, one 512² image: {encode * 1000:.0f} ms")
        ratio = edits["ViT-L/14 (768)"] / encode
        print(f"edit overhead on top of that encode (768-d mapper): {ratio:.1%}")
        bench.record("stock CLIPVisionEncode", "wall", encode, {"encode": 1.0})
        bench.record("ViT-L/14 (768): edit", "wall", edits["ViT-L/14 (768)"], {"encode": ratio})
    return 0


if __name__ == "__main__":
    sys.exit(main())
