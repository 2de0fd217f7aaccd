"""A transparent keyword classifier of edit instructions into ZONE's actions (change / add / remove).

The instruction is lower-cased and searched for whole-word cues in four tiers; the first tier with a match decides:

1. remove: removal verbs and negations (``remove``, ``delete``, ``erase``, ``get rid of``, ``take away``,
   ``without``, ``no longer`` …), so "replace nothing, just delete the car" is a removal;
2. change (strong): ``replace``, ``swap``, ``turn … into``, ``transform``, ``convert``, ``change``, ``switch``,
   ``recolor`` …, so "replace the cup with a vase" is a change although it names a new object;
3. add: ``add``, ``put``, ``place``, ``insert``, ``include``, ``give``, ``attach``, ``draw``, ``hang``, ``wear``,
   ``hold``, ``carry``, ``let there be`` …, so "make the dog wear a hat" is an addition;
4. change (weak): ``make``, ``paint``, ``color``, ``dye``, ``look``, ``style``, ``into``, ``become`` ….

Without any cue the instruction is a change (the most frequent action, 54 of ZONE's 100 test edits), reported as
``(default)``. The cue lists below are the whole rule.
"""

import re
from dataclasses import dataclass

REMOVE_CUES = (
    "remove",
    "removed",
    "removing",
    "delete",
    "deleted",
    "erase",
    "erased",
    "eliminate",
    "get rid of",
    "rid of",
    "take away",
    "take out",
    "take off",
    "clear away",
    "clear out",
    "wipe out",
    "wipe away",
    "cut out",
    "pull out",
    "strip away",
    "discard",
    "omit",
    "drop the",
    "lose the",
    "without",
    "don't want",
    "has to go",
    "no longer",
    "no more",
    "there is no",
    "there are no",
    "be no",
    "disappear",
    "vanish",
    "banish",
    "gone",
    "empty the",
    "out of the picture",
    "out of the image",
    "out of the scene",
    "out of the photo",
)
STRONG_CHANGE_CUES = (
    "replace",
    "replaced",
    "swap",
    "swapped",
    "exchange",
    "substitute",
    "transform",
    "transformed",
    "convert",
    "converted",
    "change",
    "changed",
    "switch",
    "recolor",
    "recolour",
    "repaint",
    "restyle",
    "instead of",
    "turn",
    "turned",
)
ADD_CUES = (
    "add",
    "added",
    "adding",
    "put",
    "place",
    "insert",
    "include",
    "give",
    "attach",
    "draw",
    "hang",
    "wear",
    "wearing",
    "hold",
    "holding",
    "carry",
    "carrying",
    "let there be",
    "there should be",
    "introduce",
    "sprinkle",
    "scatter",
    "decorate",
    "accompany",
    "join",
    "equip",
    "set a",
    "set an",
    "set some",
    "show a",
    "show an",
    "show some",
)
WEAK_CHANGE_CUES = (
    "make",
    "paint",
    "painted",
    "color",
    "colour",
    "dye",
    "tint",
    "look",
    "looks",
    "style",
    "into",
    "become",
    "as a",
    "as an",
    "like a",
)
TIERS = (
    ("remove", REMOVE_CUES),
    ("change", STRONG_CHANGE_CUES),
    ("add", ADD_CUES),
    ("change", WEAK_CHANGE_CUES),
)
DEFAULT_ACTION = "change"


@dataclass(frozen=True)
class RuleDecision:
    """The action and the cue that decided it (``(default)`` when none matched)."""

    action: str
    cue: str


def _pattern(cues: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = sorted(cues, key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(re.escape(cue) for cue in alternatives) + r")\b")


PATTERNS = tuple((action, _pattern(cues)) for action, cues in TIERS)


def classify_instruction(instruction: str) -> RuleDecision:
    """The action of ``instruction`` by the tiered cues above; ValueError for an empty instruction."""
    text = " ".join(instruction.lower().replace("’", "'").split())
    if not text:
        raise ValueError("instruction is empty: write the edit, e.g. 'remove the dog' or 'turn the cat into a tiger'")
    for action, pattern in PATTERNS:
        match = pattern.search(text)
        if match:
            return RuleDecision(action, match.group(1))
    return RuleDecision(DEFAULT_ACTION, "(default)")
