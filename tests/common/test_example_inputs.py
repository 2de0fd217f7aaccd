"""A fresh user runs the examples without copying anything: the pack puts the images they load into ComfyUI's input
folder when it loads, and never overwrites a file the user has there."""

import json
from pathlib import Path

from harness.ui_workflow import example_workflow_dir, example_workflows
from precise_edit.nodes.common.example_inputs import EXAMPLE_INPUTS, copy_example_inputs


def loaded_images() -> set[str]:
    """The file names every example workflow's Load Image nodes name."""
    names = set()
    for path in example_workflows():
        for node in json.loads(path.read_text())["nodes"]:
            if node["type"] == "LoadImage":
                names.add(node["widgets_values"][0])
    return names


def test_the_pack_copies_from_the_example_workflows_input_folder():
    assert EXAMPLE_INPUTS == example_workflow_dir() / "input"
    assert loaded_images() and all((EXAMPLE_INPUTS / name).is_file() for name in loaded_images())


def test_every_example_image_is_copied_once_and_a_users_file_is_kept(tmp_path: Path):
    users_file = tmp_path / "s2edit_cat.png"
    users_file.write_bytes(b"the user's own picture")
    copied = copy_example_inputs(tmp_path)
    assert users_file.read_bytes() == b"the user's own picture"
    assert users_file not in copied
    for name in loaded_images() - {"s2edit_cat.png"}:
        assert (tmp_path / name).read_bytes() == (EXAMPLE_INPUTS / name).read_bytes()
    faces = sorted(p.name for p in (tmp_path / "deltaedit_faces").iterdir())
    assert faces == sorted(p.name for p in (EXAMPLE_INPUTS / "deltaedit_faces").iterdir())
    assert copy_example_inputs(tmp_path) == []


def test_an_unwritable_input_folder_leaves_the_pack_loading(tmp_path: Path):
    blocked = tmp_path / "input"
    blocked.write_text("a file where the folder should be")
    assert copy_example_inputs(blocked) == []


def test_loading_the_pack_puts_the_example_images_into_comfyuis_input_folder(comfy):
    import folder_paths

    input_dir = Path(folder_paths.get_input_directory())
    assert all((input_dir / name).is_file() for name in loaded_images())
