"""A training node's progress on the canvas: ComfyUI's progress bar, the loss-curve preview, Cancel, the loss history.

The Identity Token, MCDM, Delta Mapper and Action Classifier trainers each create one ``TrainerProgress`` with their
step count and call ``record(step, loss)`` after every optimisation step.

The preview is ComfyUI's progress-preview tuple ``(PREVIEW_FORMAT, PIL image, max side)``: a 320 × 160 RGB plot of
the loss so far on a log scale (step 1 at the left edge, the last step at the right; the lowest loss so far at the
bottom, the highest at the top) with ``loss <last value>`` written top left. The ProgressBar hands it to ComfyUI's
progress hook with the step, and the server sends it to the browser as a binary preview of the running node.
"""

from collections.abc import Callable

import comfy.model_management
import comfy.utils
import numpy as np
import torch
from PIL import Image, ImageDraw

PREVIEWS = 40
PREVIEW_FORMAT = "JPEG"
PREVIEW_SIZE = (320, 160)


def loss_curve(losses: list[float], steps: int) -> Image.Image:
    """A small plot of the loss so far on a log scale, ``steps`` wide."""
    width, height = PREVIEW_SIZE
    image = Image.new("RGB", PREVIEW_SIZE, "white")
    logs = torch.tensor(losses).clamp_min(1e-12).log10()
    low, high = float(logs.min()), float(logs.max())
    span = max(high - low, 1e-6)
    points = [
        (round(i / max(steps - 1, 1) * (width - 1)), round((high - float(v)) / span * (height - 1)))
        for i, v in enumerate(logs)
    ]
    draw = ImageDraw.Draw(image)
    if len(points) > 1:
        draw.line(points, fill=(30, 90, 200), width=2)
    draw.text((4, 2), f"loss {losses[-1]:.4f}", fill="black")
    return image


class TrainerProgress:
    """Progress of one training run of ``steps`` steps, reported to ComfyUI step by step.

    ``record`` keeps the loss, moves the node's progress bar and, at most ``PREVIEWS`` times a run (and at the last
    step), sends the loss curve as the progress preview. Then it honours Cancel: when ComfyUI's interrupt flag is set
    (the progress hook may also raise on it) it calls ``on_interrupt`` with the history of the whole steps done, e.g.
    to write a checkpoint, and raises ComfyUI's InterruptProcessingException, so a run stops between two steps.
    """

    def __init__(self, steps: int, on_interrupt: Callable[[], None] | None = None) -> None:
        self.steps = steps
        self.losses: list[float] = []
        self._on_interrupt = on_interrupt
        self._preview_every = max(1, -(-steps // PREVIEWS))
        self._bar = comfy.utils.ProgressBar(steps)

    def record(self, step: int, loss: float) -> None:
        """Step ``step`` (counted from 1) ended with ``loss``."""
        self.losses.append(loss)
        preview = None
        if step % self._preview_every == 0 or step == self.steps:
            preview = (PREVIEW_FORMAT, loss_curve(self.losses, self.steps), max(PREVIEW_SIZE))
        try:
            self._bar.update_absolute(step, self.steps, preview)
            comfy.model_management.throw_exception_if_processing_interrupted()
        except comfy.model_management.InterruptProcessingException:
            if self._on_interrupt is not None:
                self._on_interrupt()
            raise

    @property
    def final_loss(self) -> float | None:
        """The last step's loss; None when no step ran."""
        return self.losses[-1] if self.losses else None

    def loss_map(self) -> dict[str, list[float]]:
        """The history as ComfyUI's LOSS_MAP output (what its Plot Loss Graph node reads)."""
        return {"loss": self.losses}

    def curve_image(self) -> torch.Tensor:
        """The whole run's loss curve as a ComfyUI IMAGE (1 × 160 × 320 × 3)."""
        picture = loss_curve(self.losses, self.steps) if self.losses else loss_curve([0.0], 1)
        return torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0)[None]
