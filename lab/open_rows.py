"""The rows of the lab's claims table that do not hold at this scale: what was measured and why.

``OPEN[claim]`` is ``(prefixes, why)``: the rows of that claim (``Check.claim``) whose measure starts with one of
``prefixes`` are open, and ``why`` says what they measured, what else was tried and what stops them. The tests mark
them strict xfail with ``why`` as the reason (so the list turns red the day a row holds), and ``python -m lab.report``
prints ``why`` under the table beside the row's verdict, so whoever reads the report learns why an effect is missing.
"""

from __future__ import annotations

from lab.checks import Check

OPEN: dict[str, tuple[tuple[str, ...], str]] = {
    "caption accuracy (held-out)": (
        ("position read back", "shape read back"),
        "position 0.61 and shape 0.28 after 1000 steps (colour 0.89): the model does not bind a colour to its place "
        "when a caption names two objects. On 48 held-out captions single objects are drawn at their place 0.85 of "
        "the time, the objects of two-object captions 0.46 (chance 0.5 between the two places named), captions of "
        "trained combinations alike (0.90, 0.49), with the probe's ceiling at 0.99. Phrases reworded to eight "
        "tokens each (every word at a fixed index) and retrained 1000 steps: 0.95 and 0.49 (of 64 objects of "
        "two-object captions 23 drawn only at the other object's place, 13 only at their own). Phrases with the "
        "place first ('on the left a big red circle', so the causal encoder's colour row follows its place), "
        "retrained 1000 steps: position 0.64 (one-object 0.75, two-object 0.58). Shape stays at "
        "chance: 0.30-0.37 of found objects from 400 to 1000 steps. Training the text encoder with the UNet through "
        "the diffusion loss (encoder lr 3e-4, same recipe) made it worse: position 0.17 / 0.22 / 0.31 at 400 / 600 / "
        "1000 steps (one-object 0.00 / 0.17 / 0.33, two-object 0.25 / 0.25 / 0.29; colour 0.61 / 0.72 / 0.72); "
        "encoder lr 1e-4: 0.22 / 0.28 / 0.39 (two-object 0.29 / 0.38 / 0.42), lr 1e-3 at 400 steps 0.17, against "
        "the frozen encoder's one-object 0.83 and two-object 0.50 on the same captions. The trained encoder washes "
        "out the place words: swapping 'right' for 'left' changes that word's row by 0.16 (lr 3e-4) or 0.62 "
        "(1e-4) against 0.92 frozen, and word rows' mean cosine rises from 0.26 to 0.56-0.62",
    ),
    "p2p word swap": (
        ("share of edits with the new colour in place",),
        "colour in place 0/4 injected, 1/4 regenerated (n=4; the layout itself holds, 0.64 against 0.45): the "
        "injected object keeps its place but half-changes colour (yellow -> yellow-green for 'green', read as "
        "yellow); with a shorter cross window (0.2) the new colour appears, but at the other object's place, as the "
        "model's two-object captions bind a colour to its place only 0.46 of the time (caption accuracy row); "
        "37-72 % of the maps' mass is on padding tokens, which the causal encoder changes for every swap. The "
        "values, not the maps, move the image: with every map injected at every step (cross 1.0, self 1.0 and the "
        "16x16 self-attention layers the official rule leaves free replaced too) a swap still moves the objects "
        "and the background tint, while the unchanged prompt replays the source; a swap changes every later row of "
        "the encoder by 18-26 % (padding included). On one-object scenes (8, 7 read) injection does no better: "
        "layout 0.29 against 0.28, new colour in place 3/7 both; guided inversion instead of null-text (8 "
        "two-object scenes): layout 0.51 against 0.43, colour in place 0.25 both",
    ),
    "ZONE locator": (
        ("M_b IoU", "IoU of D > 0, the attention difference's sign flipped"),
        "M_b is the whole image for every action (IoU = the uniform map's 0.042 change, 0.061 add, 0.061 remove), "
        "now with the instruction UNet fine-tuned from the part-1 UNet as InstructPix2Pix is from SD (conv_in "
        "zero-widened to 8 channels, 300 steps), as it was trained from scratch: the start- and end-token maps of "
        "the null-instruction branches stay nearly proportional, so D ≤ 54 everywhere; the region where D > 0 "
        "overlaps the edit no better than uniform either (0.042 change, 0.013 add, 0.095 remove). The part-1 "
        "model's colour words find their objects (attention row), but the null branches read '' (the start token "
        "and padding), to which it gave place to nothing; nor does the instruction branch locate the edit (M_b "
        "IoU 0.072/0.098/0.056 against uniform 0.052/0.060/0.052, 4 edits per action in a clone run)",
    ),
    "ZONE edit (attention M_b)": (
        ("share of composites with the edit", "mean change outside the true region"),
        "with M_b the whole image Region-IoU picks the background segment (M_f IoU 0.000) and the composite drops "
        "the edit: 0/6 changes, 0/6 additions and 2/6 removals kept, where the plain model made 0/6, 5/6 and 6/6",
    ),
    "ZONE edit (difference M_b)": (
        ("share of composites with the edit",),
        "the fine-tuned model makes no change edit (0/6: the new colour lands on the other object, the binding "
        "failure of the part-1 model's two-object captions) and repaints much of the image for 'add' (mean change "
        "outside 0.110), so the Difference Locator's relative threshold finds more than the object (M_b IoU 0.151) "
        "and 1/6 composites keep the addition (plain 5/6); for 'remove' 4/6 (plain 6/6, M_f IoU 0.500)",
    ),
    "ZONE fused guidance": (
        ("removal success",),
        "1/8 removals succeed with InstructPix2Pix alone, fused at β 0.2 and with MagicBrush's stand-in alone "
        "alike: the object's colour is gone in 7/8, 7/8 and 8/8, but the model also moves, recolours or drops the "
        "other objects (the part-1 model's colour-place binding failure), and the stand-in (the instruction UNet "
        "fine-tuned 100 more steps on 600 edits, half removals) differs little: at β 0.2 it weighs 1/6 of the "
        "blend, which changes the change outside the object from 0.0786 to 0.0773",
    ),
    "ZONE three turns": (
        (
            "share of chains with the turn's edit there (turn 2",
            "share of chains with the turn's edit there (turn 3",
            "mean change outside the three true regions",
        ),
        "each turn keeps every pixel outside its final mask (settled rows) and the first turn (change) keeps its "
        "edit in 1 of 3 chains, but no addition and no removal does: the model repaints the background for 'add', "
        "so the Difference Locator's M_b is most of the image, Region-IoU picks the background segment and the new "
        "object stays out; the removals leave the object (as in the fused row, other objects change instead). "
        "After three turns the change outside the three true regions is 0.043 against 0.069 for the plain model "
        "chained on its own outputs (which erases the scene): less, not less than half",
    ),
    "S2Edit identity edit": (
        ("attribute success",),
        (
            "attribute success 0.10 with the full method (n=10 edits of 2 portraits; glasses, hat, smile, shirt and "
            "hair colour) where null-text inversion + p2p without fine-tuning reached 0.40: 40 steps of identity "
            "fine-tuning on one 128 px portrait (LoRA on the UNet and the text encoder) make the model redraw the "
            "training image whatever the target prompt says"
        ),
    ),
    "S2Edit ablation": (
        ("attribute success, full method against", "mean |Δpixel| outside the edited attribute's mask, full method"),
        (
            "all four variants measure the same (identity kept 1.00, attribute success 0.10, change outside the mask "
            "0.038): both controls act on the token [I] only, its embedding and its attention, while the LoRA holds "
            "the image; identity is kept by the inversion itself (10/10 without any fine-tuning too), so no column "
            "separates the variants at this scale"
        ),
    ),
    "S2Edit compositional": (
        ("[I] with [A] hat",),
        (
            "[A] learned from a second portrait's hat (other face, shifted two cells) is not drawn on the source "
            "(0/1; identity kept 1/1): a dark band appears where the hat goes but the probe reads no hat; the model "
            "draws no hat from the text either (0/2 without fine-tuning)"
        ),
    ),
    "MCDM edit (held-out identities)": (
        ("share of edits keeping the identity (",),
        (
            "identity kept 0.40 of 10 held-out edits (three-scale guidance; plain text guidance 0.10, with its own "
            "mask 0.30, the text-to-image model from the same noise 0.30): the skin tone is kept in 10/10, the face "
            "shape in 4/10 (read as another of the three shapes). The shapes differ in a few edge cells, and the "
            "part-1 model the MCDM starts from draws shapes at chance (caption accuracy "
            "row: shape 0.28); 400 steps on 600 pairs teach the MCDM to copy colours and layout (change outside the "
            "true region 0.050 against the text-to-image model's 0.116) but not the outline's edge cells"
        ),
    ),
    "DeltaEdit joint encoder": (
        ("zero-shot smile", "zero-shot hat"),
        "smile 0.53 and hat 0.61 (chance 0.50) after 700 steps of batch 64, where skin, hair and shirt colour reach "
        "1.00, glasses 0.84 and face shape 0.58: the colours are learned first; at 400 steps smile and hat were "
        "0.56/0.59 with one-attribute hard negatives and 0.58/0.57 without them, so they rise slowly and each 100 "
        "steps costs about 40 s of DeltaEdit's 5-minute CI budget",
    ),
    "DeltaEdit unCLIP reconstruction": (
        ("face_shape of", "hat of"),
        "the unCLIP UNet (300 fine-tuning steps from the part-1 UNet) draws the embedding's shirt colour (1.00) and "
        "hair colour (0.53, chance 0.25), and skin 0.43, glasses 0.67 and smile 0.67 only 0.10-0.17 above chance "
        "(0.33, 0.5, 0.5; settled rows), but face shape 0.20 (chance 0.33) and hat 0.47 (chance 0.5) not above it "
        "(n=30): its renders are blurred at the cell scale, and the embedding itself tells hats apart only 0.61 of "
        "the time (joint encoder row)",
    ),
    "DeltaEdit disentanglement": (
        (
            "hair black → blonde",
            "glasses False → True: other",
            "hat False → True: other",
            "smile False → True",
        ),
        "n=6 per edit: hair black → blonde 0.00 (the mapper's renders turn the hair orange, read as ginger, and "
        "drop the hat: others kept 0.47), smile 0.17 (= the unedited renders'; the joint encoder does not tell "
        "smiles apart); glasses and hat are applied (0.67, 0.83) but change other attributes (kept 0.44, 0.75; "
        "straightforward 0.94, 0.97, which applies them 0.17, 0.50)",
    ),
}


def is_open(check: Check) -> bool:
    """Whether ``check`` is one of the rows ``OPEN`` lists."""
    prefixes = OPEN.get(check.claim, ((), ""))[0]
    return check.measure.startswith(prefixes)
