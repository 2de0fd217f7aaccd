"""The images the example workflows load, put into ComfyUI's input folder when the pack loads.

LoadImage reads only from ComfyUI's input folder, so without this a fresh user's first run of an example stops at
"Invalid image file". Every file under ``example_workflows/input/`` (subfolders kept: the DeltaEdit trainer reads
``input/deltaedit_faces/``) is copied there unless a file of that name is already there: a user's own file is never
overwritten. A folder that cannot be written is reported in the log and the pack still loads.
"""

import logging
import shutil
from pathlib import Path

EXAMPLE_INPUTS = Path(__file__).resolve().parents[2] / "example_workflows" / "input"


def copy_example_inputs(input_dir: Path, source: Path = EXAMPLE_INPUTS) -> list[Path]:
    """Copy each file under ``source`` that ``input_dir`` lacks to the same relative path; return the new files."""
    copied: list[Path] = []
    if not source.is_dir():
        return copied
    for file in sorted(path for path in source.rglob("*") if path.is_file()):
        target = input_dir / file.relative_to(source)
        if target.exists():
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with file.open("rb") as reader, target.open("xb") as writer:  # "x": never replaces a file
                shutil.copyfileobj(reader, writer)
        except FileExistsError:
            continue
        except OSError as error:
            logging.warning("Precise Edit: could not copy the example image %s to %s: %s", file.name, target, error)
            continue
        copied.append(target)
    if copied:
        logging.info("Precise Edit: copied %d example image(s) to %s", len(copied), input_dir)
    return copied


def provide_example_inputs() -> list[Path]:
    """Copy the example images into ComfyUI's input folder (``folder_paths.get_input_directory()``)."""
    import folder_paths

    return copy_example_inputs(Path(folder_paths.get_input_directory()))
