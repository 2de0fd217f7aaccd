"""TrainerProgress, the one progress + loss-curve + Cancel + history helper of the four training nodes, run inside a
real prompt through ComfyUI's executor and its progress hook (the one main.py installs, which raises on Interrupt).

The test node trains nothing: step ``s`` has loss 2^(-s/10). On Cancel it writes a checkpoint of the history as a
trainer would; at the end it writes its result. Both writes are atomic, as the trainers' are.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from harness.errors import PromptFailed

NODE = "PreciseEditTest_TrainerProgress"


def loss_at(step: int) -> float:
    return 2.0 ** (-step / 10)


class TrainForTests:
    """Records ``steps`` losses through a TrainerProgress; Cancel is pressed during step ``cancel_at`` (0: never)."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "steps": ("INT", {"default": 1, "min": 1}),
                "cancel_at": ("INT", {"default": 0, "min": 0}),
                "folder": ("STRING", {"default": ""}),
            }
        }

    RETURN_TYPES = ("LOSS_MAP",)
    FUNCTION = "train"
    CATEGORY = "testing"

    @classmethod
    def IS_CHANGED(cls, **inputs: Any) -> float:
        return float("nan")

    def train(self, steps: int, cancel_at: int, folder: str) -> tuple[dict[str, list[float]]]:
        import comfy.model_management

        from precise_edit.core.files.atomic_file import write_atomically
        from precise_edit.nodes.common.trainer_progress import TrainerProgress

        def save(name: str) -> None:
            text = json.dumps(progress.losses)
            write_atomically(Path(folder) / name, lambda path: Path(path).write_text(text))

        progress = TrainerProgress(steps, on_interrupt=lambda: save(f"checkpoint_{len(progress.losses)}.json"))
        for step in range(1, steps + 1):
            if step == cancel_at:
                comfy.model_management.interrupt_current_processing(True)
            progress.record(step, loss_at(step))
        save("final.json")
        return (progress.loss_map(),)


@pytest.fixture
def train_node(comfy, run_graph, monkeypatch) -> Iterator[Callable[..., dict[str, list[float]]]]:
    """``train_node(steps, cancel_at=0)`` runs the test node as node "1" of a prompt and returns its LOSS_MAP."""
    import nodes

    monkeypatch.setitem(nodes.NODE_CLASS_MAPPINGS, NODE, TrainForTests)

    def train(steps: int, folder: Path, cancel_at: int = 0) -> dict[str, list[float]]:
        inputs = {"steps": steps, "cancel_at": cancel_at, "folder": str(folder)}
        return run_graph({"1": {"class_type": NODE, "inputs": inputs}}, outputs=["1"])["1"][0]

    yield train


@pytest.fixture
def reports(train_node, tmp_path, monkeypatch) -> list[tuple[int, int, Any]]:
    """Every (value, total, preview) ProgressBar hands ComfyUI's progress hook, which then runs as usual."""
    import comfy.utils

    train_node(1, tmp_path)  # the first prompt installs the executor's hook
    hook = comfy.utils.PROGRESS_BAR_HOOK
    assert hook is not None
    seen: list[tuple[int, int, Any]] = []

    def recording(value, total, preview, prompt_id=None, node_id=None):
        seen.append((value, total, preview))
        return hook(value, total, preview, prompt_id, node_id)

    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", recording)
    return seen


def test_every_step_is_kept_and_the_curve_preview_is_sent_at_most_40_times_a_run(train_node, reports, tmp_path):
    from harness.executor import last_events

    steps = 79
    loss = train_node(steps, tmp_path)
    assert loss == {"loss": [loss_at(s) for s in range(1, steps + 1)]}

    previews = {value: preview for value, _, preview in reports if preview is not None}
    assert sorted(previews) == [*range(2, steps, 2), steps], "every 2nd step of 79 (at most 40 previews) and the last"
    for preview in previews.values():
        assert preview[0] == "JPEG" and preview[1].size == (320, 160) and preview[2] == 320
    # The plot spans the whole run: at step 40 the curve has reached the middle (x ≈ 160) and the rest is white; at
    # the last step the lowest loss sits in the bottom-right corner.
    halfway = np.asarray(previews[40][1])
    assert (halfway[:, 163:] == 255).all() and (halfway[:, 150:158] != 255).any()
    assert previews[steps][1].getpixel((319, 159)) == (30, 90, 200)

    # What the browser is told: this node's progress out of 79, rising, ending at 79 (later ComfyUIs leave out some
    # updates without a preview, never one with a preview, the first or the last).
    sent = [data for event, data in last_events() if event == "progress" and data["node"] == "1"]
    values = [data["value"] for data in sent]
    assert {data["max"] for data in sent} == {steps} and values == sorted(set(values))
    assert values[0] == 1 and values[-1] == steps and set(previews) <= set(values)


@pytest.mark.parametrize("hook_checks_interrupt", [True, False], ids=["hook raises", "update left out by throttle"])
def test_cancel_stops_after_the_step_writes_the_checkpoint_and_nothing_half_written(
    train_node, reports, tmp_path, monkeypatch, hook_checks_interrupt
):
    """Cancel pressed during step 5 of 10: ComfyUI's hook raises in that step's update; where a later ComfyUI's
    throttled ProgressBar leaves the update out, the helper's own check stops the run there all the same."""
    import comfy.model_management
    import comfy.utils

    if not hook_checks_interrupt:
        monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", lambda value, total, preview, **_: reports.append(value))
    before = len(reports)
    with pytest.raises(PromptFailed, match="node 1 .* was interrupted"):
        train_node(10, tmp_path / "cancelled", cancel_at=5)
    assert not comfy.model_management.processing_interrupted()
    assert [r if isinstance(r, int) else r[0] for r in reports[before:]] == [1, 2, 3, 4, 5]
    written = {path.name: json.loads(path.read_text()) for path in (tmp_path / "cancelled").rglob("*")}
    assert written == {"checkpoint_5.json": [loss_at(s) for s in range(1, 6)]}, "the whole steps, and no final file"

    again = train_node(10, tmp_path)
    assert len(again["loss"]) == 10, "the cancelled node's output was not cached"


def test_the_history_gives_the_final_loss_and_the_whole_curve_as_an_image(comfy, monkeypatch):
    import comfy.utils

    from precise_edit.nodes.common.trainer_progress import TrainerProgress, loss_curve

    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", None)
    progress = TrainerProgress(3)
    assert progress.final_loss is None and progress.loss_map() == {"loss": []}
    empty = progress.curve_image()
    curve_colour = torch.tensor([30, 90, 200]) / 255.0
    assert empty.shape == (1, 160, 320, 3) and not (empty == curve_colour).all(-1).any(), "no step, no curve"
    for step in (1, 2, 3):
        progress.record(step, loss_at(step))
    assert progress.final_loss == loss_at(3) and progress.loss_map() == {"loss": [loss_at(s) for s in (1, 2, 3)]}
    image = progress.curve_image()
    picture = torch.from_numpy(np.asarray(loss_curve(progress.losses, 3), dtype=np.float32))[None] / 255.0
    assert image.shape == (1, 160, 320, 3) and torch.equal(image, picture)
