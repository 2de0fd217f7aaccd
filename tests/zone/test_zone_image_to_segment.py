"""ZONE segments the original for a removal and the edited image otherwise: the Action Classifier's choice, carried
by Image To Segment, decides which image reaches SAM (in-process graphs of the pack's and stock nodes)."""

import pytest
import torch

ORIGINAL, EDITED = 0xC03020, 0x2040D0


def graph(instruction: str) -> dict:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 48, "height": 32, "batch_size": 1, "color": ORIGINAL}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 48, "height": 32, "batch_size": 1, "color": EDITED}},
        "3": {
            "class_type": "PreciseEdit_ActionClassifier",
            "inputs": {"instruction": instruction, "classifier": "keyword_rules", "decision_rule": "auto"},
        },
        "4": {
            "class_type": "PreciseEdit_ImageToSegment",
            "inputs": {"original": ["1", 0], "edited": ["2", 0], "segment_original": ["3", 3]},
        },
        "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}},
    }


def colour(value: int) -> torch.Tensor:
    return torch.tensor([(value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF]) / 255.0


@pytest.mark.parametrize(
    ("instruction", "action", "segmented"),
    [
        ("remove the hat", "remove", ORIGINAL),
        ("get rid of the car on the left", "remove", ORIGINAL),
        ("make the box red", "change", EDITED),
        ("put a star on the wall", "add", EDITED),
    ],
)
def test_sam_gets_the_original_for_remove_and_the_edit_otherwise(run_graph, instruction, action, segmented):
    outputs = run_graph(graph(instruction), outputs=["3", "4"])
    assert outputs["3"][0] == action and outputs["3"][3] is (action == "remove")
    (image,) = outputs["4"]
    assert image.shape == (1, 32, 48, 3)
    assert torch.allclose(image[0, 0, 0], colour(segmented))
