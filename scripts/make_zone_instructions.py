"""Write ``data/zone_instructions.jsonl``: edit instructions labelled change / add / remove (ZONE action classifier).

ZONE trained its classifier on 600 GPT-3.5 sentences over the 80 COCO classes (450 train / 150 test, balanced; not
released). This script builds a replacement the same way, without a language model: many phrasings per action
(imperatives, requests, wishes, terse notes, some without any of the usual verbs) filled with COCO objects, colours,
materials, styles and places. Seeded, so the file is reproducible; one JSON object per line:
``{"instruction": "...", "action": "change" | "add" | "remove"}``.

    python scripts/make_zone_instructions.py [--per-action 200] [--seed 0] [--out data/zone_instructions.jsonl]
"""

import argparse
import json
import random
from pathlib import Path

COCO = (
    "person, bicycle, car, motorcycle, airplane, bus, train, truck, boat, traffic light, fire hydrant, stop sign, "
    "parking meter, bench, bird, cat, dog, horse, sheep, cow, elephant, bear, zebra, giraffe, backpack, umbrella, "
    "handbag, tie, suitcase, frisbee, skis, snowboard, sports ball, kite, baseball bat, baseball glove, skateboard, "
    "surfboard, tennis racket, bottle, wine glass, cup, fork, knife, spoon, bowl, banana, apple, sandwich, orange, "
    "broccoli, carrot, hot dog, pizza, donut, cake, chair, couch, potted plant, bed, dining table, toilet, tv, laptop, "
    "mouse, remote, keyboard, cell phone, microwave, oven, toaster, sink, refrigerator, book, clock, vase, scissors, "
    "teddy bear, hair drier, toothbrush"
).split(", ")
ANIMALS = ("cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "bird", "teddy bear")
PEOPLE = ("man", "woman", "girl", "boy", "person", "child", "old man", "lady")
WEARABLES = ("hat", "scarf", "pair of sunglasses", "crown", "bow tie", "necklace", "backpack", "tie", "party hat")
HELD = ("umbrella", "cup", "book", "kite", "tennis racket", "baseball bat", "cell phone", "banana", "bottle")
COLORS = ("red", "blue", "green", "yellow", "purple", "pink", "orange", "black", "white", "golden", "silver", "brown")
MATERIALS = ("wood", "glass", "gold", "marble", "ice", "stone", "paper", "chocolate", "lego bricks", "metal")
STYLES = ("Van Gogh", "watercolor", "cartoon", "pixel art", "oil painting", "anime", "cyberpunk", "sketch")
SEASONS = ("winter", "autumn", "spring", "summer", "night", "sunset", "a rainy day", "a foggy morning")
PLACES = (
    "on the left",
    "on the right",
    "in the background",
    "in the corner",
    "on the table",
    "in the sky",
    "on the grass",
    "next to the door",
    "on the bench",
    "near the window",
    "in the foreground",
    "behind the car",
)
WHICH = ("", "", "", "small ", "big ", "red ", "old ", "left ", "second ", "white ")
STUFF = ("flowers", "snow", "confetti", "stars", "leaves", "sprinkles", "balloons", "fairy lights")

CHANGE = (
    "turn the {o} into {a2}",
    "change the {o} to {a2}",
    "replace the {o} with {a2}",
    "swap the {o} for {a2}",
    "swap out the {o} for {a2}",
    "make the {o} {c}",
    "paint the {o} {c}",
    "change the color of the {o} to {c}",
    "recolor the {o} {c}",
    "dye the {o} {c}",
    "make the {o} look like it is made of {m}",
    "transform the {o} into {m}",
    "the {o} should be {c}",
    "can you make the {o} {c}?",
    "I want the {o} to be {c}",
    "let the {o} be made of {m}",
    "turn the {o} {c}",
    "switch the {o} to a {c} one",
    "render the {o} in {s} style",
    "make it look like a {s} painting",
    "convert the photo into {s}",
    "make it {season}",
    "change the season to {season}",
    "turn the scene into {season}",
    "what if the {o} were {a2}?",
    "{o} in {c} please",
    "the {o} but {c}",
    "could the {o} be {m} instead",
    "give the {o} a {c} color",
    "have the {o} become {a2}",
    "make the {p} look older",
    "turn the {p} into a statue",
    "change the {p}'s shirt to {c}",
    "make the {p} smile",
    "the {o} ought to look like {m}",
    "a {c} {o} instead of this one",
)
ADD = (
    "add {a} {pl}",
    "put {a} {pl}",
    "place {a} {pl}",
    "insert {a} {pl}",
    "give the {an} a {w}",
    "let the {an} wear a {w}",
    "make the {an} wear a {w}",
    "put a {w} on the {an}",
    "have the {p} hold {ah}",
    "let the {p} carry {ah}",
    "the {p} should be holding {ah}",
    "draw {a} {pl}",
    "there should be {a} {pl}",
    "include {a} in the scene",
    "add some {plural} {pl}",
    "add two {plural} {pl}",
    "hang a clock on the wall",
    "let there be {a} {pl}",
    "sprinkle {st} over the {o}",
    "decorate the {o} with {st}",
    "attach a {w} to the {an}",
    "show {a} {pl}",
    "can you add {a} {pl}?",
    "I'd like to see {a} {pl}",
    "plant a potted plant {pl}",
    "add a rainbow in the sky",
    "put {st} on the {o}",
    "add {a} next to the {o2}",
    "a {o} {pl}, please",
    "also a {w} for the {an}",
    "place {a} beside the {o2}",
    "introduce {a} into the picture",
)
REMOVE = (
    "remove the {wh}{o}",
    "remove the {o} {pl}",
    "delete the {o} {pl}",
    "erase the {wh}{o}",
    "get rid of the {o}",
    "get rid of the {o} {pl}",
    "take away the {o}",
    "take the {o} out of the picture",
    "eliminate the {wh}{o}",
    "make the {o} disappear",
    "the image without the {o}",
    "no more {plural}",
    "clear away the {plural}",
    "wipe out the {o} {pl}",
    "lose the {o}",
    "drop the {o} from the photo",
    "can you remove the {c} {o}?",
    "pull out the {o}",
    "cut out the {o} from the image",
    "show the scene without the {o}",
    "the {o} should be gone",
    "make the {o} vanish",
    "there should be no {o}",
    "I don't want the {o} in the photo",
    "remove all the {plural}",
    "delete every {o}",
    "erase the {p} {pl}",
    "take off the {p}'s {w}",
    "remove the {w} from the {an}",
    "the {o} has to go",
    "without the {o} please",
    "get the {o} out of the scene",
)
TEMPLATES = {"change": CHANGE, "add": ADD, "remove": REMOVE}
IRREGULAR = {"person": "people", "mouse": "mice", "knife": "knives", "sheep": "sheep", "skis": "skis"}


def article(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def plural(noun: str) -> str:
    if noun in IRREGULAR:
        return IRREGULAR[noun]
    if noun.endswith(("s", "ch", "sh", "x")):
        return noun + "es"
    return noun + "s"


def fill(template: str, rng: random.Random) -> str:
    objects = rng.sample(COCO, 2)
    values = {
        "o": objects[0],
        "o2": objects[1],
        "a": article(objects[0]),
        "a2": article(objects[1]),
        "plural": plural(objects[0]),
        "an": rng.choice(ANIMALS + PEOPLE),
        "p": rng.choice(PEOPLE),
        "w": rng.choice(WEARABLES),
        "ah": article(rng.choice(HELD)),
        "c": rng.choice(COLORS),
        "m": rng.choice(MATERIALS),
        "s": rng.choice(STYLES),
        "season": rng.choice(SEASONS),
        "pl": rng.choice(PLACES),
        "wh": rng.choice(WHICH),
        "st": rng.choice(STUFF),
    }
    text = template.format(**values)
    return text[0].upper() + text[1:] if rng.random() < 0.5 else text


def instructions(per_action: int, seed: int) -> list[dict[str, str]]:
    """``per_action`` unique instructions per action, every template used about equally often, in shuffled order."""
    rng = random.Random(seed)
    rows = []
    for action, templates in TEMPLATES.items():
        seen: set[str] = set()
        order: list[str] = []
        while len(seen) < per_action:
            if not order:
                order = list(templates)
                rng.shuffle(order)
            text = fill(order.pop(), rng)
            if text.lower() not in seen:
                seen.add(text.lower())
                rows.append({"instruction": text, "action": action})
    rng.shuffle(rows)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-action", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "data/zone_instructions.jsonl"
    )
    args = parser.parse_args()
    rows = instructions(args.per_action, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    print(f"wrote {len(rows)} instructions to {args.out}")


if __name__ == "__main__":
    main()
