"""The attention-effect protocol: what an effect declares, what it is told at each attention call, what it answers.

An attention patch (``cross_attention_patch.CrossAttentionPatch`` on a UNet's ``attn2``) holds an ordered list of
effects and, at each call, runs those that are active. The contract, for an effect ``e``:

- ``e.steps`` (a ``StepRange``) and ``e.target`` (a ``PromptTarget``) say when and on which prompts it acts; it is
  active at a call whose sigma is in ``e.steps`` and whose batch holds at least one chunk (one prompt's images) that
  ``e.target`` matches.
- ``e.apply(probabilities, context) -> (probabilities, changed)``. ``probabilities`` is ``A = softmax(QKᵀ/√d)`` as
  left by the effects before it, ``[rows, H, Tq, Tk]`` for the batch rows ``context.rows`` (the rows of every active
  effect, so an effect must act only on its own rows, ``context.selected``, and leave the others as they are).
  ``changed`` names the key columns where the returned probabilities may differ from the given ones: a tuple of
  column indices, ``ALL``, or ``NONE`` (a recorder only reads: it returns the given tensor and ``NONE``). It must not
  change its input in place.
- ``e.begin_run()`` is called once per sampling run before the first step (a recorder clears what it holds).

The patch computes the probabilities explicitly only when some effect is active, runs the active effects in order
(``apply_effects``), and when some effect changed columns adds ``(A* − A) V`` on those columns only
(``core.attention.cross_attention.output_correction``) to the ordinary attention output. A new effect is a subclass
of ``AttentionEffect``; the patch needs no change for it.

Effects are shared by every clone of a patched model (``SharedOnClone``): what they hold (masks, stores, edits) is
never copied. An effect that caches device tensors keeps the cache in a field of its own (not in a frozen dataclass)
and builds it outside inference mode, so a later pass that records gradients can save it for backward.
"""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

import torch
from comfy.model_patcher import ModelPatcher

from .shared_on_clone import SharedOnClone


@dataclass(frozen=True)
class CondInfo:
    """What a cond of the running guider is: its role in the guider and the tags our nodes attached."""

    role: str
    tags: frozenset[str]


@dataclass(frozen=True)
class CallInfo:
    """Per UNet call: the current sigma, per batch chunk its cond (None outside a guider), and the ``attn2``
    replaces the call runs with (None when unknown)."""

    sigma: float
    chunks: tuple[CondInfo | None, ...] | None
    attn2_replaces: dict | None = None


@dataclass(frozen=True)
class PromptTarget:
    """The prompts an effect applies to: conds carrying ``tag``, else conds of guider role ``role`` ("all": any)."""

    role: str = "positive"
    tag: str | None = None

    def matches(self, cond: CondInfo | None) -> bool:
        if cond is None:
            return True
        if self.tag is not None:
            return self.tag in cond.tags
        return self.role == "all" or cond.role == self.role


@dataclass(frozen=True)
class StepRange:
    """Active while ``sigma_end ≤ σ ≤ sigma_start`` (from start/end percent through the model's sampling)."""

    sigma_start: float
    sigma_end: float

    @classmethod
    def from_percent(cls, model: ModelPatcher, start_percent: float, end_percent: float) -> "StepRange":
        if start_percent > end_percent:
            raise ValueError(f"start_percent ({start_percent}) must not exceed end_percent ({end_percent})")
        sampling = model.get_model_object("model_sampling")
        return cls(sampling.percent_to_sigma(start_percent), sampling.percent_to_sigma(end_percent))

    @classmethod
    def from_steps(cls, sampling_sigmas: torch.Tensor, steps: range) -> "StepRange":
        """Active at the sampling steps ``steps`` (step i evaluates the model at ``sampling_sigmas[i]``)."""
        if not steps:
            raise ValueError("an empty range of steps has no sigma range")
        return cls(float(sampling_sigmas[steps[0]]), float(sampling_sigmas[steps[-1]]))

    def contains(self, sigma: float) -> bool:
        return self.sigma_end <= sigma <= self.sigma_start


def context_repetitions(context_length: int, keys: int) -> int:
    """How often a prompt of ``context_length`` tokens is repeated in a cross-attention context of ``keys`` tokens.

    ComfyUI repeats a shorter context up to the least common multiple when it batches prompts of different
    lengths, so each token of the prompt then appears once per repetition.
    """
    if keys % context_length:
        raise ValueError(f"cross-attention has {keys} context tokens, not a multiple of the prompt's {context_length}")
    return keys // context_length


class Changed(Enum):
    """Which key columns an effect changed, when not a tuple of them."""

    ALL = "all"
    NONE = "none"


ALL = Changed.ALL
NONE = Changed.NONE
ChangedColumns = tuple[int, ...] | Changed


def merge_changed(first: ChangedColumns, second: ChangedColumns) -> ChangedColumns:
    """The columns changed by two effects run one after the other."""
    if first is NONE:
        return second
    if second is NONE:
        return first
    if first is ALL or second is ALL:
        return ALL
    return tuple(sorted(set(first) | set(second)))


class IndexCache:
    """Long index tensors per (values, device), made on the host once, so a step adds no host-device transfer.

    Made outside inference mode: a later pass that records gradients must be able to save them for backward.
    """

    def __init__(self) -> None:
        self._indices: dict[tuple[tuple[int, ...], torch.device], torch.Tensor] = {}

    def get(self, values: tuple[int, ...], device: torch.device) -> torch.Tensor:
        key = (values, device)
        if key not in self._indices:
            with torch.inference_mode(False):
                self._indices[key] = torch.tensor(values, dtype=torch.long, device=device)
        return self._indices[key]


class AttentionLayer(Protocol):
    """The layer an attention call belongs to; ``name`` is how recorders key it."""

    @property
    def name(self) -> str: ...


@dataclass(frozen=True, kw_only=True)
class EffectContext:
    """What an effect is told at one attention call.

    ``rows``: the batch rows the probabilities hold, in order; ``chunks``: the batch chunks (one prompt's ``images``
    images each) that this effect targets; ``grid``: the query token grid ``(h, w)``; ``indices``: the patch's cache
    of index tensors on ``device``.
    """

    layer: AttentionLayer
    call: CallInfo
    grid: tuple[int, int]
    images: int
    rows: tuple[int, ...]
    chunks: tuple[int, ...]
    device: torch.device
    indices: IndexCache

    def index(self, values: tuple[int, ...]) -> torch.Tensor:
        """``values`` as a long tensor on the call's device (cached)."""
        return self.indices.get(values, self.device)

    @property
    def selected(self) -> tuple[bool, ...]:
        """For each probability row, whether it belongs to a chunk this effect targets."""
        return tuple(row // self.images in self.chunks for row in self.rows)

    @property
    def row_images(self) -> tuple[int, ...]:
        """For each probability row, the index of its image within its chunk."""
        return tuple(row % self.images for row in self.rows)

    def selected_rows(self) -> torch.Tensor:
        """The probability rows of this effect's chunks, as an index tensor."""
        return self.index(tuple(i for i, chosen in enumerate(self.selected) if chosen))

    def chunk_rows(self, chunk: int) -> torch.Tensor:
        """The probability rows of ``chunk``'s images, in batch order, as an index tensor."""
        return self.index(tuple(self.rows.index(chunk * self.images + i) for i in range(self.images)))


class AttentionEffect(SharedOnClone, ABC):
    """An effect on attention probabilities (see the module docstring for the contract).

    Subclasses provide ``steps: StepRange`` and ``target: PromptTarget`` (dataclass fields or attributes).
    """

    steps: StepRange
    target: PromptTarget

    @abstractmethod
    def apply(self, probabilities: torch.Tensor, context: EffectContext) -> tuple[torch.Tensor, ChangedColumns]:
        """The probabilities after this effect, and which key columns it changed."""

    def begin_run(self) -> None:
        """Called once per sampling run, before its first step."""


def active_effects(
    effects: Sequence[AttentionEffect], call: CallInfo, chunks: Sequence[CondInfo | None]
) -> list[tuple[AttentionEffect, tuple[int, ...]]]:
    """The effects active at this call, each with the batch chunks it targets."""
    active = []
    for effect in effects:
        if effect.steps.contains(call.sigma):
            hit = tuple(c for c, cond in enumerate(chunks) if effect.target.matches(cond))
            if hit:
                active.append((effect, hit))
    return active


def apply_effects(
    effects: Sequence[tuple[AttentionEffect, EffectContext]], probabilities: torch.Tensor
) -> tuple[torch.Tensor, ChangedColumns]:
    """Run ``effects`` in order on ``probabilities``; returns the result and the union of the changed columns."""
    changed: ChangedColumns = NONE
    for effect, context in effects:
        probabilities, columns = effect.apply(probabilities, context)
        changed = merge_changed(changed, columns)
    return probabilities, changed
