"""Thumbnails for ComfyUI's template browser: one ``<workflow>.jpg`` beside each example workflow.

The browser shows a custom node pack's template with ``/api/workflow_templates/<pack>/<name>.jpg`` in a card at most
256 px high (comfyui_frontend_package 1.32.9: ``getTemplateThumbnailUrl``, ``max-h-64 object-contain``), so each
card is 512 × 512 for sharp screens. A card shows the workflow's own example image, an arrow labelled with the edit,
and a sketch of what changes, drawn with PIL on a copy of the image (the pack's stand-in models cannot make the real
result; the lab's runs of a workflow replace its card when they exist). The DiT workflows, which the harness
validates but does not run (``harness.ui_workflow.NOT_RUN``), get a sketch card like every other.

Usage: ``.venv/bin/python -m harness.thumbnails`` (writes every card).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from harness.ui_workflow import example_workflow_dir, example_workflows

SIZE = 512
PANEL = 200
BACKGROUND = (30, 32, 38)
TEXT = (236, 236, 240)
MUTED = (160, 164, 176)
ACCENT = (255, 196, 64)
FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf")
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
SCENE_LAMP = 0.25  # zone_scene.png's small yellow lamp lies in the top quarter; the box below it


def font(size: int, bold: bool = False) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    path = FONT_DIR / FONT_FILES[bold]
    return ImageFont.truetype(str(path), size) if path.is_file() else ImageFont.load_default(size)


def example_image(name: str) -> Image.Image:
    return Image.open(example_workflow_dir() / "input" / name).convert("RGB")


def fit(image: Image.Image, box: int = PANEL) -> Image.Image:
    """Scale to fit a ``box`` square (nearest neighbour: the example images are small flat drawings)."""
    scale = box / max(image.size)
    size = (round(image.width * scale), round(image.height * scale))
    return image.resize(size, Image.NEAREST if scale >= 1 else Image.LANCZOS)


# --- sketches of what each edit changes, drawn on the example image at panel scale -----------------------------


def sunglasses(image: Image.Image) -> Image.Image:
    out = fit(image)
    draw = ImageDraw.Draw(out)
    w = out.width
    for cx in (0.42 * w, 0.6 * w):
        draw.ellipse((cx - 20, 0.5 * w - 15, cx + 20, 0.5 * w + 15), fill=(20, 20, 24), outline=(90, 90, 100), width=3)
    draw.line((0.42 * w + 20, 0.5 * w - 4, 0.6 * w - 20, 0.5 * w - 4), fill=(20, 20, 24), width=5)
    return out


def stripes_on_cat(image: Image.Image, pattern: Image.Image) -> Image.Image:
    out, stripes = fit(image), fit(pattern).resize(fit(image).size)
    pixels, stripe_pixels = out.load(), stripes.load()
    for x in range(out.width):
        for y in range(out.height):
            r, g, b = pixels[x, y]
            if r > 180 and 120 < g < 200 and b < 120 and sum(stripe_pixels[x % stripes.width, y]) < 150:
                pixels[x, y] = (40, 28, 20)
    return out


def smile(image: Image.Image) -> Image.Image:
    out = fit(image)
    draw = ImageDraw.Draw(out)
    w = out.width
    draw.rectangle((0.42 * w, 0.66 * w, 0.66 * w, 0.72 * w), fill=(240, 200, 170))
    draw.arc((0.38 * w, 0.52 * w, 0.7 * w, 0.78 * w), 20, 160, fill=(150, 30, 40), width=6)
    return out


def santa(image: Image.Image) -> Image.Image:
    out = fit(image)
    draw = ImageDraw.Draw(out)
    w = out.width
    draw.rectangle((0.27 * w, 0.72 * w, 0.73 * w, w), fill=(200, 30, 40))
    draw.rectangle((0.27 * w, 0.72 * w, 0.73 * w, 0.77 * w), fill=(245, 245, 245))
    draw.rectangle((0.47 * w, 0.77 * w, 0.53 * w, w), fill=(245, 245, 245))
    draw.polygon([(0.3 * w, 0.3 * w), (0.7 * w, 0.3 * w), (0.62 * w, 0.05 * w)], fill=(200, 30, 40))
    draw.rectangle((0.28 * w, 0.27 * w, 0.72 * w, 0.33 * w), fill=(245, 245, 245))
    draw.ellipse((0.58 * w, 0.01 * w, 0.68 * w, 0.11 * w), fill=(245, 245, 245))
    return out


def recolour_box(image: Image.Image, below: float = 0.0) -> Image.Image:
    """The yellow box made red, its segment outlined (the only pixels that change); yellow above ``below`` (a
    fraction of the height: the scene's small lamp) stays."""
    out = fit(image)
    pixels = out.load()
    box = [out.width, out.height, 0, 0]
    for x in range(out.width):
        for y in range(out.height):
            r, g, b = pixels[x, y]
            if r > 200 and g > 170 and b < 110 and y >= below * out.height:
                pixels[x, y] = (210, 50, 50)
                box = [min(box[0], x), min(box[1], y), max(box[2], x), max(box[3], y)]
    if box[2] > box[0]:
        ImageDraw.Draw(out).rectangle((box[0] - 3, box[1] - 3, box[2] + 3, box[3] + 3), outline=ACCENT, width=2)
    return out


def three_turns(image: Image.Image) -> Image.Image:
    """Turn 1 makes the box red, turn 2 puts a star on the wall, turn 3 removes the hat (the green triangle)."""
    out = recolour_box(image, below=SCENE_LAMP)
    pixels = out.load()
    w, h = out.size
    wall = pixels[w // 2, 4]
    hat = [(x, y) for x in range(w) for y in range(h) if pixels[x, y][1] > pixels[x, y][0] + 40]
    for x, y in hat:
        pixels[x, y] = wall
    draw = ImageDraw.Draw(out)
    centre, radii = (0.3 * w, 0.22 * h), (0.13 * h, 0.055 * h)
    star = [
        (centre[0] + radii[k % 2] * math.sin(k * math.pi / 5), centre[1] - radii[k % 2] * math.cos(k * math.pi / 5))
        for k in range(10)
    ]
    draw.polygon(star, fill=(250, 220, 90))
    hat_centre = (sum(x for x, _ in hat) / len(hat), sum(y for _, y in hat) / len(hat)) if hat else (0.7 * w, 0.3 * h)
    for index, (x, y) in enumerate(((0.35 * w, 0.62 * h), (centre[0] + 22, centre[1] + 12), hat_centre)):
        draw.ellipse((x - 11, y - 11, x + 11, y + 11), fill=ACCENT)
        draw.text((x, y), str(index + 1), fill=BACKGROUND, font=font(15, bold=True), anchor="mm")
    return out


def test_picture(box_colour: tuple[int, int, int]) -> Image.Image:
    """Zone difference compositing's own picture: a blue canvas with a box in its top-left quarter."""
    image = Image.new("RGB", (PANEL, PANEL), (0x3A, 0x5F, 0x8C))
    ImageDraw.Draw(image).rectangle((0, 0, PANEL // 2, PANEL // 2), fill=box_colour)
    return image


def attention_canvas(confined: bool) -> Image.Image:
    """A 512² latent canvas sketch: the word's attention spread out, or kept in the left half."""
    image = Image.new("RGB", (PANEL, PANEL), (24, 24, 60))
    draw = ImageDraw.Draw(image)
    spots = [(0.25, 0.45, 0.22), (0.3, 0.7, 0.12)] if confined else [(0.3, 0.4, 0.2), (0.72, 0.6, 0.22)]
    for fx, fy, fr in spots:
        for step in range(12, 0, -1):
            radius = fr * PANEL * step / 12
            heat = int(255 * (1 - step / 12))
            draw.ellipse(
                (fx * PANEL - radius, fy * PANEL - radius, fx * PANEL + radius, fy * PANEL + radius),
                fill=(min(255, 60 + heat), heat // 2, 90 - heat // 3),
            )
    if confined:
        draw.line((PANEL // 2, 0, PANEL // 2, PANEL), fill=ACCENT, width=3)
        draw.text((PANEL * 0.25, PANEL - 16), "mask", fill=ACCENT, font=font(14), anchor="mm")
    draw.text((6, 6), "'cat'", fill=TEXT, font=font(16, bold=True))
    return image


def pair_canvas(image: Image.Image) -> Image.Image:
    left, right = fit(image, PANEL // 2), santa(image).resize((PANEL // 2, PANEL // 2), Image.LANCZOS)
    canvas = Image.new("RGB", (PANEL, PANEL), BACKGROUND)
    canvas.paste(left, (0, PANEL // 4))
    canvas.paste(right, (PANEL // 2, PANEL // 4))
    ImageDraw.Draw(canvas).rectangle((0, PANEL // 4, PANEL - 1, 3 * PANEL // 4 - 1), outline=ACCENT, width=2)
    return canvas


@dataclass(frozen=True)
class Card:
    title: str
    method: str
    edit: str
    note: str
    before: Callable[[], Image.Image]
    after: Callable[[], Image.Image]


def dit_zone_card(model: str, release: str) -> Card:
    """The card of ZONE's local edit on an instruction DiT: the scene's box made red."""
    return Card(
        f"Local edit on {model}",
        f"ZONE · {release} + SAM",
        "make the box red",
        "the DiT's attention locates the segment",
        lambda: fit(example_image("zone_scene.png")),
        lambda: recolour_box(example_image("zone_scene.png"), below=SCENE_LAMP),
    )


CARDS: dict[str, Card] = {
    "s2edit_identity_edit": Card(
        "Identity edit",
        "S2Edit · SD1.5",
        "+ sunglasses",
        "learns [I] from one photo, edits the rest",
        lambda: fit(example_image("s2edit_cat.png")),
        lambda: sunglasses(example_image("s2edit_cat.png")),
    ),
    "s2edit_compositional": Card(
        "Identity + attribute",
        "S2Edit · SD1.5",
        "[I] cat with [A] stripes",
        "the reference image gives the attribute",
        lambda: fit(example_image("s2edit_cat.png")),
        lambda: stripes_on_cat(example_image("s2edit_cat.png"), example_image("s2edit_stripes.png")),
    ),
    "deltaedit_unclip": Card(
        "Text-free direction edit",
        "DeltaEdit · SD2.1 unCLIP-L",
        "face → face with smile",
        "a CLIP direction moves the image embedding",
        lambda: fit(example_image("deltaedit_face.png")),
        lambda: smile(example_image("deltaedit_face.png")),
    ),
    "mcdm_edit": Card(
        "Portrait outfit edit",
        "MCDM · SD1.5",
        "→ santa claus costume",
        "the person kept, only the outfit changes",
        lambda: fit(example_image("mcdm_portrait.png")),
        lambda: santa(example_image("mcdm_portrait.png")),
    ),
    "mcdm_make_pairs": Card(
        "Training pairs in one canvas",
        "MCDM data · SD1.5",
        "normal → santa costume",
        "one double-width run: a matching pair",
        lambda: fit(example_image("mcdm_portrait.png")),
        lambda: pair_canvas(example_image("mcdm_portrait.png")),
    ),
    "zone_local_edit": Card(
        "Local edit from an instruction",
        "ZONE · InstructPix2Pix + SAM",
        "make the box red",
        "only the located segment is pasted back",
        lambda: fit(example_image("zone_scene.png")),
        lambda: recolour_box(example_image("zone_scene.png"), below=SCENE_LAMP),
    ),
    "zone_multi_turn": Card(
        "Three instructions in a row",
        "ZONE · InstructPix2Pix + SAM",
        "1 box red · 2 star · 3 no hat",
        "each turn pastes back one segment",
        lambda: fit(example_image("zone_scene.png")),
        lambda: three_turns(example_image("zone_scene.png")),
    ),
    "zone_qwen_image_edit": dit_zone_card("Qwen-Image-Edit", "Qwen-Image-Edit 2509"),
    "zone_flux_kontext": dit_zone_card("Flux Kontext", "Flux.1 Kontext dev"),
    "zone_difference_compositing": Card(
        "Composite any editor's change",
        "ZONE · difference locator",
        "make the box red",
        "outside the snapped segment: the original",
        lambda: test_picture((0xE8, 0xC5, 0x47)),
        lambda: recolour_box(test_picture((0xE8, 0xC5, 0x47))),
    ),
    "attention_mask_demo": Card(
        "Confine a word, map its attention",
        "Attention · SD1.5",
        "'cat' → left half",
        "A*[I] = A[I] ⊙ M, then heat maps",
        lambda: attention_canvas(confined=False),
        lambda: attention_canvas(confined=True),
    ),
}


def render(card: Card) -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), BACKGROUND)
    draw = ImageDraw.Draw(image)
    size = 30
    while size > 18 and draw.textlength(card.title, font=font(size, bold=True)) > SIZE - 48:
        size -= 1
    draw.text((24, 22 + (30 - size) // 2), card.title, fill=TEXT, font=font(size, bold=True))
    draw.text((24, 62), card.method, fill=ACCENT, font=font(20))
    top = 120
    for x, panel in ((24, card.before()), (SIZE - 24 - PANEL, card.after())):
        image.paste(panel, (x + (PANEL - panel.width) // 2, top + (PANEL - panel.height) // 2))
    arrow_y = top + PANEL // 2
    draw.line((24 + PANEL + 14, arrow_y, SIZE - 24 - PANEL - 18, arrow_y), fill=ACCENT, width=6)
    tip = SIZE - 24 - PANEL - 8
    draw.polygon([(tip, arrow_y), (tip - 18, arrow_y - 13), (tip - 18, arrow_y + 13)], fill=ACCENT)
    draw.text((24 + PANEL // 2, top + PANEL + 22), "source", fill=MUTED, font=font(18), anchor="mm")
    draw.text((SIZE - 24 - PANEL // 2, top + PANEL + 22), "what changes", fill=MUTED, font=font(18), anchor="mm")
    draw.text((SIZE // 2, top + PANEL + 78), card.edit, fill=TEXT, font=font(26, bold=True), anchor="mm")
    draw.text((SIZE // 2, top + PANEL + 124), card.note, fill=MUTED, font=font(20), anchor="mm")
    draw.text((SIZE // 2, SIZE - 28), "Precise Edit", fill=MUTED, font=font(16), anchor="mm")
    return image


def main() -> int:
    for path in example_workflows():
        card = CARDS.get(path.stem)
        if card is None:
            print(f"{path.name}: no card")
            continue
        render(card).save(path.with_suffix(".jpg"), quality=90, optimize=True)
        print(f"wrote {path.with_suffix('.jpg').name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
