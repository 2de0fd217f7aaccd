"""What a copy of a patched model's options shares: the one place that says why our patches are not deep-copied.

``ModelPatcher.clone()`` copies ``model_options``, where our attention patches (and, through them, their effects,
masks, stores and edits) live. ComfyUI 0.3.x deep-copies it (``copy.deepcopy``); later ComfyUIs copy only its dicts
and lists and share every other object. A deep copy would be wrong for all of them: a capture must keep writing into
the store the node returned (a copy would fill a store nobody reads), masks and prompt-to-prompt mappers are tensors
that must not be duplicated per clone, and the device copies cached from them would be rebuilt on every run. So a
deep copy of these objects returns ``clone_copy()``: the object itself, unless the class says otherwise.

A patch that other packs change in place (IP-Adapter ``add``s its callback to the ``attn2`` replace it finds) returns
a new object from ``clone_copy`` that shares everything it holds, so a change to one clone never reaches the model it
was cloned from; ``patch_install`` gives clones that same own copy on ComfyUIs that do not deep-copy.
"""

from typing import TypeVar

Shared = TypeVar("Shared", bound="SharedOnClone")


class SharedOnClone:
    """Deep copies (ModelPatcher.clone on ComfyUI 0.3.x) return ``clone_copy()``, by default the object itself."""

    def clone_copy(self: Shared) -> Shared:
        return self

    def __deepcopy__(self: Shared, memo: dict) -> Shared:
        return self.clone_copy()
