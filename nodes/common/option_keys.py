"""Combo options as short stable keys: a workflow saves the key, the input's tooltip explains each key on its own
line, and the prose labels that earlier versions saved still read as their keys.

ComfyUI checks a combo value against the option list before running (0.33.0 for every combo, 0.3.75 only for V1
list combos), except for the inputs that a node's ``validate_inputs`` names as arguments. So a node whose options had
labels names those inputs in ``validate_inputs`` and answers with ``OptionKeys.validate``, which accepts the keys and
the old labels, and maps the value with ``OptionKeys.key`` in ``execute``: a saved workflow with an old label loads,
passes validation and runs as with the key, on either version.
"""

import re
from dataclasses import dataclass

KEY_PATTERN = re.compile(r"[a-z0-9_.+-]+")


@dataclass(frozen=True)
class Option:
    """One choice: the ``key`` saved in workflows, what it means (its tooltip line), and the ``legacy_label`` that
    workflows saved before keys (None for a choice that was always its key)."""

    key: str
    meaning: str
    legacy_label: str | None = None


class OptionKeys:
    """The options of one combo, in display order."""

    def __init__(self, *options: Option) -> None:
        keys = [option.key for option in options]
        bad = [key for key in keys if not KEY_PATTERN.fullmatch(key)]
        if bad or len(set(keys)) != len(keys):
            raise ValueError(f"option keys must be unique and match {KEY_PATTERN.pattern}: {keys}")
        self.options = options

    @property
    def keys(self) -> list[str]:
        return [option.key for option in self.options]

    @property
    def legacy_labels(self) -> dict[str, str]:
        """Old label → key."""
        return {option.legacy_label: option.key for option in self.options if option.legacy_label is not None}

    def tooltip(self, summary: str) -> str:
        """``summary``, then one line per option: ``key: meaning``."""
        return "\n".join([summary, *(f"{option.key}: {option.meaning}" for option in self.options)])

    def key(self, name: str, value: str, *others: str) -> str:
        """The key of ``value`` (a key or an old label), or ``value`` itself when it is one of ``others`` (choices
        listed beside the keys, such as file names). Raises a ValueError naming the input ``name`` otherwise."""
        if value in self.keys or value in others:
            return value
        if value in self.legacy_labels:
            return self.legacy_labels[value]
        raise ValueError(self._unknown(name, value, others))

    def validate(self, name: str, value: str | None, *others: str) -> bool | str:
        """For ``validate_inputs``: True for a key, an old label, one of ``others`` or None (a linked input, known
        only when it runs); otherwise the message ComfyUI shows."""
        if value is None or value in self.keys or value in others or value in self.legacy_labels:
            return True
        return self._unknown(name, value, others)

    def _unknown(self, name: str, value: str, others: tuple[str, ...]) -> str:
        return f"{name}: {value!r} is not one of {', '.join([*self.keys, *others])}"


def all_valid(*results: bool | str) -> bool | str:
    """Join the ``validate`` results of a node's keyed inputs: True, or every message."""
    problems = [result for result in results if result is not True]
    return "; ".join(str(problem) for problem in problems) or True
