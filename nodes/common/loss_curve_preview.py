"""The loss-curve image the training nodes show as their progress preview."""

import torch
from PIL import Image, ImageDraw

PREVIEWS = 40
PREVIEW_SIZE = (320, 160)


def loss_curve(losses: list[float], steps: int) -> Image.Image:
    """A small plot of the loss so far on a log scale, for the progress preview."""
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
