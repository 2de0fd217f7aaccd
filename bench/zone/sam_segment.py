"""SAM Segment Everything against calling segment-anything's SamAutomaticMaskGenerator directly, same model and image.

Both sides run the released generator with the same settings on the same image; ours adds the IMAGE → uint8
conversion, the progress/interrupt hook per prompt batch, the device round trip, sorting and stacking the masks into
one tensor. Runs alternate between the two in one process; the script prints the median wall and process CPU time of
each and the ratio ours / direct (expected ≈ 1.0), and checks that both return the same masks.

    .venv/bin/python bench/zone/sam_segment.py                                 # tiny random SAM (64 px input), CPU
    .venv/bin/python bench/zone/sam_segment.py --preset full --device cuda     # random ViT-B, 1024² image, on a GPU

The models are random (no weights can be downloaded), so the thresholds are lowered until masks come out; the cost
of a run does not depend on the weights.
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.append(str(Path(__file__).resolve().parents[2]))

from bench.common import parser, start  # noqa: E402

PRESET_MODEL = {"tiny": ("tiny", 256), "full": ("vit_b", 1024)}

SETTINGS = {
    "points_per_side": 32,
    "points_per_batch": 64,
    "pred_iou_thresh": 0.0,
    "stability_score_thresh": 0.0,
    "stability_score_offset": 1.0,
    "box_nms_thresh": 0.7,
    "crop_n_layers": 0,
    "min_mask_region_area": 0,
}


def random_sam(model: str):
    """The tiny harness SAM, or a released architecture with random weights."""
    from segment_anything import sam_model_registry

    from harness.tiny_models import build_sam

    if model != "tiny":
        return sam_model_registry[model]().eval()
    from precise_edit.core.zone.sam_architecture import sam_from_state_dict

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tiny-sam.pth"
        build_sam(path)
        return sam_from_state_dict(torch.load(path, weights_only=True))[0]


def main(argv: list[str] | None = None) -> int:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--model", choices=("tiny", "vit_b", "vit_l", "vit_h"), help="default: the preset's")
    arguments.add_argument("--size", type=int, default=0, help="image height and width (0: the preset's)")
    bench = start(__file__, arguments.parse_args(argv))
    args = bench.args
    model, size = PRESET_MODEL[bench.preset.name]
    args.model, args.size = args.model or model, args.size or size
    import comfy.model_management
    from segment_anything import SamAutomaticMaskGenerator

    from precise_edit.core.zone.sam_architecture import infer_architecture
    from precise_edit.nodes.zone.nodes_segment import SAMSegmentEverything
    from precise_edit.nodes.zone.sam_model import SamModel

    if str(comfy.model_management.get_torch_device()) != str(torch.device(args.device)):
        print(f"note: ComfyUI's torch device is {comfy.model_management.get_torch_device()}, ours runs there")
    sam = random_sam(args.model).to(args.device)
    rng = np.random.default_rng(0)
    pixels = (rng.random((args.size, args.size, 3)) * 255).astype(np.uint8)
    pixels[: args.size // 2, : args.size // 3] = (200, 40, 30)
    image = torch.from_numpy(pixels).float()[None] / 255.0
    wrapped = SamModel(sam, infer_architecture(sam.state_dict()), args.model)

    def direct() -> torch.Tensor:
        records = SamAutomaticMaskGenerator(sam, output_mode="binary_mask", **SETTINGS).generate(pixels)
        records = sorted(records, key=lambda record: -record["area"])
        return torch.from_numpy(np.stack([record["segmentation"] for record in records]))

    def ours() -> torch.Tensor:
        widgets = {**SETTINGS, "sort_by": "area", "if_none_pass": "error"}
        return SAMSegmentEverything.execute(wrapped, image, **widgets).result[0].bool()

    runs: dict[str, list[tuple[float, float]]] = {"direct": [], "ours": []}
    outputs: dict[str, torch.Tensor] = {}
    for _ in range(args.repeats + 1):  # the first round warms up and is dropped
        for name, run in (("direct", direct), ("ours", ours)):
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            cpu, wall = time.process_time(), time.perf_counter()
            outputs[name] = run()
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            runs[name].append((time.process_time() - cpu, time.perf_counter() - wall))
    medians = {name: [statistics.median(t[k] for t in times[1:]) for k in (0, 1)] for name, times in runs.items()}
    same = torch.equal(outputs["direct"].cpu(), outputs["ours"].cpu())
    print(
        f"SAM {args.model}, {args.size}², {SETTINGS['points_per_side']}² points, {outputs['ours'].shape[0]} masks, "
        f"median of {args.repeats} rounds, torch {torch.get_num_threads()} threads, {args.device}"
    )
    for name, (cpu, wall) in medians.items():
        print(f"  {name:7s} wall {wall * 1000:8.1f} ms   cpu {cpu * 1000:8.1f} ms")
    ratio_wall = medians["ours"][1] / medians["direct"][1]
    ratio_cpu = medians["ours"][0] / medians["direct"][0]
    print(f"  ratio ours/direct: wall {ratio_wall:.3f}, cpu {ratio_cpu:.3f}; identical masks: {same}")
    for name, (cpu, wall) in medians.items():
        bench.record(name, "wall", wall, {"direct": wall / medians["direct"][1]})
        if not bench.cuda:
            bench.record(name, "cpu", cpu, {"direct": cpu / medians["direct"][0]})
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
