"""The ZONE difference-compositing example workflow on the server: wired as documented, the edit kept inside a
mask that is neither empty nor the whole image, and the original kept outside it.

The run is the ``example_runs`` one that tests/common/test_workflows.py reads too: the workflow is queued once.
"""

import numpy as np

BACKGROUND, BOX = (0x3A, 0x5F, 0x8C), (0xE8, 0xC5, 0x47)


def test_zone_compositing_workflow_keeps_the_original_outside_its_final_mask(example_runs):
    run = example_runs["zone_difference_compositing"]
    prompt = run.prompt
    kinds = {node_id: node["class_type"] for node_id, node in prompt.items()}
    smoother = next(node for node in prompt.values() if node["class_type"] == "PreciseEdit_FFTEdgeSmoother")
    select = prompt[smoother["inputs"]["fine_mask"][0]]
    assert select["class_type"] == "PreciseEdit_RegionIoUSelect" and select["inputs"]["mode"] == "argmax"
    assert kinds[select["inputs"]["rough_mask"][0]] == "PreciseEdit_DifferenceLocator"
    assert kinds[smoother["inputs"]["edited"][0]] == "VAEDecode"
    assert "MarkdownNote" not in kinds.values()

    composite = run.pixels("zone_difference_compositing")
    mask = run.pixels("zone_difference_compositing_mask", mode="L")
    original = np.empty_like(composite)
    original[:] = BACKGROUND
    original[:32, :32] = BOX  # the workflow's 256 px box on 512 px, at the stand-ins' 1/8 scale
    outside = mask == 0
    assert composite.shape == (64, 64, 3) and mask.shape == (64, 64)
    assert outside.any() and not outside.all(), "the final mask is empty or covers the whole image"
    assert (composite[outside] == original[outside]).all()
    assert (composite[~outside] != original[~outside]).any(), "the composite is the original inside the mask too"
