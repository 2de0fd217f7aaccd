"""A loader's file input checked against the files its model folder lists when the prompt is validated.

ComfyUI 0.3.75 checks a V3 combo's value against its options only for V1 list inputs, so a loader whose file is
missing would pass validation and fail at run time. Loaders return ``listed_model_file`` from ``validate_inputs``:
the prompt is refused before anything runs, naming the folder, its paths and what it holds. ComfyUI prefixes the
message with the input's name.
"""

from collections.abc import Sequence

import folder_paths

SHOWN_FILES = 8


def listed_model_file(value: str, listed: Sequence[str], folder: str) -> bool | str:
    """True when ``value`` is one of the files ``models/<folder>`` lists now, else the error a user can act on."""
    if value in listed:
        return True
    paths = ", ".join(folder_paths.get_folder_paths(folder))
    if not listed:
        held = "it holds no model file yet"
    else:
        shown = ", ".join(repr(name) for name in list(listed)[:SHOWN_FILES])
        more = f" and {len(listed) - SHOWN_FILES} more" if len(listed) > SHOWN_FILES else ""
        held = f"it holds {shown}{more}"
    return (
        f"{value!r} is not in models/{folder} ({paths}); {held}. Put the file there (the example workflow's note "
        "says where to download it), then refresh the node definitions (R) and pick it from the list"
    )
