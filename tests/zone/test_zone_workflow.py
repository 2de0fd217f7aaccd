"""example_workflows/zone_difference_compositing.json on the server: wired as documented, and the original kept outside.

The prompt is the one tests/test_workflows.py queues for every example workflow, so in a full run the server
answers it from its cache.
"""

import json
from pathlib import Path

import numpy as np
from PIL import Image

from harness.stand_in_scale import shrink_for_stand_ins
from harness.workflow_format import ui_to_api

WORKFLOW = Path(__file__).resolve().parents[2] / "example_workflows" / "zone_difference_compositing.json"
BACKGROUND, BOX = (0x3A, 0x5F, 0x8C), (0xE8, 0xC5, 0x47)


def test_zone_compositing_workflow_keeps_the_original_outside_its_final_mask(comfy_server):
    prompt = ui_to_api(json.loads(WORKFLOW.read_text()), comfy_server.object_info())
    kinds = {node_id: node["class_type"] for node_id, node in prompt.items()}
    smoother = next(node for node in prompt.values() if node["class_type"] == "PreciseEdit_FFTEdgeSmoother")
    select = prompt[smoother["inputs"]["fine_mask"][0]]
    assert select["class_type"] == "PreciseEdit_RegionIoUSelect" and select["inputs"]["mode"] == "argmax"
    assert kinds[select["inputs"]["rough_mask"][0]] == "PreciseEdit_DifferenceLocator"
    assert kinds[smoother["inputs"]["edited"][0]] == "VAEDecode"
    assert "MarkdownNote" not in kinds.values()

    entry = comfy_server.wait(comfy_server.queue(shrink_for_stand_ins(prompt)))
    saved = {path.name.rsplit("_", 2)[0]: path for path in comfy_server.output_images(entry)}
    composite = np.asarray(Image.open(saved["zone_difference_compositing"]).convert("RGB"))
    mask = np.asarray(Image.open(saved["zone_difference_compositing_mask"]).convert("L"))
    original = np.empty_like(composite)
    original[:] = BACKGROUND
    original[:32, :32] = BOX  # the workflow's 256 px box on 512 px, at the stand-ins' 1/8 scale
    outside = mask == 0
    assert composite.shape == (64, 64, 3) and outside.any()
    assert (composite[outside] == original[outside]).all()
