"""Save names on every OS: every name or folder a node saves under (identity, Delta Mapper, action-classifier and
MCDM trainers, Paired Data Generator) and the MCDM trainer's pairs folder stay inside their ComfyUI folder on Linux
and on Windows. ``\\`` separates folders like ``/``; ``..``, absolute paths, drives, UNC shares, empty names, Windows
device names and parts ending in a dot or space are refused, naming the input and what is allowed, before any
training work and without writing anything."""

import re
from pathlib import Path

import pytest
import torch

# (name, the problem the error states)
REFUSED = [
    ("..", "has a '..' part"),
    ("sub/../..", "has a '..' part"),
    ("..\\..\\evil", "has a '..' part"),
    ("sub\\..\\..\\evil", "has a '..' part"),
    ("./name", "has a '.' part"),
    ("/etc/x", "is an absolute path"),
    ("\\evil", "is an absolute path"),
    ("C:\\x", "names drive C:"),
    ("c:/x", "names drive c:"),
    ("C:evil", "names drive C:"),
    ("\\\\server\\share", "is a UNC share"),
    ("//server/share/x", "is a UNC share"),
    ("", "is empty"),
    ("   ", "is empty"),
    ("\t", "is empty"),
    ("CON", "'CON' is a Windows device name"),
    ("nul", "'nul' is a Windows device name"),
    ("COM1", "'COM1' is a Windows device name"),
    ("LPT1", "'LPT1' is a Windows device name"),
    ("CON.txt", "'CON.txt' is a Windows device name"),
    ("aux.tar.gz", "'aux.tar.gz' is a Windows device name"),
    ("NUL .safetensors", "'NUL .safetensors' is a Windows device name"),
    ("sub/PRN/name", "'PRN' is a Windows device name"),
    ("name.", "'name.' ends in a dot, which Windows drops"),
    ("sub./name", "'sub.' ends in a dot, which Windows drops"),
    ("sub /name", "'sub ' ends in a space, which Windows drops"),
    ("sub//name", r"has an empty part \(two separators in a row, or one at the end\)"),
    ("sub/", r"has an empty part \(two separators in a row, or one at the end\)"),
    ("a:b", "names drive a:"),
    ("name:stream", "'name:stream' holds ':'"),
    ("what?", "'what\\?' holds '\\?'"),
    ("a|b", "'a\\|b' holds '\\|'"),
    ("tab\there", r"'tab\\there' holds '\\t'"),
]
ALLOWED = [
    ("name", ("name",)),
    ("  name  ", ("name",)),
    ("sub/name", ("sub", "name")),
    ("sub\\name", ("sub", "name")),
    ("a/b\\c", ("a", "b", "c")),
    ("CONSOLE", ("CONSOLE",)),
    ("com10", ("com10",)),
    ("my model.v2", ("my model.v2",)),
    ("faces_2026-12", ("faces_2026-12",)),
]
IDS = [repr(name) for name, _ in REFUSED]


def problem(message: str) -> str:
    """The pattern of an error naming the input, the problem and what is allowed."""
    return rf"^{{input}} .*: {message}\. Give a "


@pytest.mark.parametrize(("name", "message"), REFUSED, ids=IDS)
def test_names_that_leave_their_folder_on_some_os_are_refused(name, message):
    from precise_edit.nodes.common.save_names import name_parts

    with pytest.raises(ValueError, match=problem(message).format(input="filename_prefix")) as error:
        name_parts(name, "filename_prefix", "models/delta_mappers")
    assert f"filename_prefix {name!r}" in str(error.value)
    assert "inside models/delta_mappers" in str(error.value) and "'sub/name'" in str(error.value)


@pytest.mark.parametrize(("name", "parts"), ALLOWED, ids=[repr(name) for name, _ in ALLOWED])
def test_relative_names_with_either_separator_name_subfolders(name, parts):
    from precise_edit.nodes.common.save_names import name_parts, path_inside

    assert name_parts(name, "filename_prefix", "models/x") == parts
    assert path_inside(Path("/root"), name, "filename_prefix", "models/x") == Path("/root", *parts)


def test_a_plain_file_name_refuses_folders_and_says_so():
    from precise_edit.nodes.common.save_names import name_parts

    assert name_parts("pe_cat", "name", "models/embeddings") == ("pe_cat",)
    for name in ("sub/name", "sub\\name"):
        with pytest.raises(ValueError, match=r"name '.*': names a folder\. Give a plain file name such as 'name'"):
            name_parts(name, "name", "models/embeddings", subfolders=False)


def test_the_same_name_with_either_separator_saves_to_the_same_file(comfy):
    from precise_edit.nodes.common.model_folders import DELTA_MAPPERS, named_path, next_free_path, save_folder
    from precise_edit.nodes.mcdm.pairs_folder_location import pairs_folder_for_writing

    root = save_folder(DELTA_MAPPERS)
    expected = root / "sub" / "faces_00001.safetensors"
    assert next_free_path(DELTA_MAPPERS, "sub/faces") == next_free_path(DELTA_MAPPERS, "sub\\faces") == expected
    assert named_path(DELTA_MAPPERS, "sub\\faces") == named_path(DELTA_MAPPERS, "sub/faces.safetensors")
    assert named_path(DELTA_MAPPERS, "faces") == root / "faces.safetensors"
    output = Path(comfy.base_dir / "output")
    assert pairs_folder_for_writing("mcdm_pairs\\santa") == output / "mcdm_pairs" / "santa"
    assert not (root / "sub").exists() and not (output / "mcdm_pairs" / "santa").exists()


def test_next_free_path_counts_on_inside_the_subfolder(comfy):
    from precise_edit.nodes.common.model_folders import DELTA_MAPPERS, next_free_path, save_folder

    folder = save_folder(DELTA_MAPPERS) / "counting"
    folder.mkdir(parents=True)
    (folder / "run_00004.safetensors").write_bytes(b"")
    (folder / "run_x_00009.safetensors").write_bytes(b"")
    assert next_free_path(DELTA_MAPPERS, "counting\\run") == folder / "run_00005.safetensors"


# Each saving node with everything but its save name left unusable (None models, no data): a refusal must come
# from the name check, before any encoding or training starts.
def identity_trainer(name: str):
    from precise_edit.nodes.s2edit.nodes_identity import IdentityTokenTrainer

    image = torch.zeros(1, 64, 64, 3)
    arguments = ("a photo of a [I] cat", "cat", 1, 5e-4, 1e-4, 5e-5, 4, True, 0, name)
    return IdentityTokenTrainer.execute(None, None, None, image, *arguments)


def delta_mapper_trainer(name: str):
    from precise_edit.nodes.deltaedit.nodes_mapper import DeltaMapperTrainer

    return DeltaMapperTrainer.execute(None, None, "no_such_folder", 1, 1, 0.5, 0, name)


def action_classifier_trainer(name: str):
    from precise_edit.nodes.zone.nodes_instruct import ActionClassifierTrainer

    return ActionClassifierTrainer.execute(None, "data/zone_instructions.jsonl", 1, 1, 1e-3, 0.25, 0, name)


def mcdm_trainer(name: str, pairs_folder: str = "mcdm_pairs/none"):
    from precise_edit.nodes.mcdm.nodes_train import NULL_GUIDER, MCDMTrainer

    settings = (pairs_folder, 1, 1, 1e-4, 0, 0, name, NULL_GUIDER, "fp32", False, "")
    return MCDMTrainer.execute(None, None, None, *settings, joint_clip=object())


def paired_data_generator(name: str):
    from precise_edit.nodes.mcdm.nodes_data import PairedDataGenerator

    return PairedDataGenerator.execute(torch.rand(1, 16, 32, 3), name, "a man", "a woman")


SAVING_NODES = {
    "IdentityTokenTrainer": (identity_trainer, "name", "models/embeddings and models/loras"),
    "DeltaMapperTrainer": (delta_mapper_trainer, "filename_prefix", "models/delta_mappers"),
    "ActionClassifierTrainer": (action_classifier_trainer, "name", "models/action_classifiers"),
    "MCDMTrainer": (mcdm_trainer, "filename_prefix", "models/mcdm"),
    "PairedDataGenerator": (paired_data_generator, "folder", "ComfyUI's output directory"),
}


def written_files(comfy) -> set[Path]:
    return {path for path in Path(comfy.base_dir).rglob("*") if path.is_file()}


@pytest.mark.parametrize("node", list(SAVING_NODES))
@pytest.mark.parametrize(("name", "message"), REFUSED, ids=IDS)
def test_every_saving_node_refuses_the_name_before_any_work_and_writes_nothing(comfy, node, name, message):
    run, input_name, inside = SAVING_NODES[node]
    before = written_files(comfy)
    with pytest.raises(ValueError, match=problem(message).format(input=input_name)) as error:
        run(name)
    assert inside in str(error.value)
    assert written_files(comfy) == before


@pytest.mark.parametrize("node", list(SAVING_NODES))
def test_an_absolute_folder_that_exists_is_refused_and_left_empty(comfy, tmp_path, node):
    run, input_name, _ = SAVING_NODES[node]
    target = tmp_path / "evil"
    target.mkdir()
    with pytest.raises(ValueError, match=rf"^{input_name} '{re.escape(str(target))}.*': is an absolute path\."):
        run(str(target / "name"))
    assert list(target.iterdir()) == []


def test_the_identity_name_is_one_word_without_folders(comfy):
    before = written_files(comfy)
    for name in ("sub/pe_cat", "sub\\pe_cat"):
        with pytest.raises(ValueError, match=r"^name '.*': names a folder\. Give a plain file name"):
            identity_trainer(name)
    assert written_files(comfy) == before


@pytest.mark.parametrize(("name", "message"), REFUSED, ids=IDS)
def test_the_mcdm_trainer_reads_pairs_only_from_output_or_input(comfy, name, message):
    before = written_files(comfy)
    with pytest.raises(ValueError, match=problem(message).format(input="pairs_folder")) as error:
        mcdm_trainer("mcdm", pairs_folder=name)
    assert "inside ComfyUI's output or input directory" in str(error.value)
    assert written_files(comfy) == before


def test_pairs_are_read_from_output_first_then_input_and_never_from_an_absolute_folder(comfy, tmp_path):
    from precise_edit.nodes.mcdm.pairs_folder_location import pairs_folder_for_reading

    output, input_ = Path(comfy.base_dir / "output"), Path(comfy.base_dir / "input")
    (input_ / "read_test" / "only_input").mkdir(parents=True)
    (input_ / "read_test" / "both").mkdir(parents=True)
    (output / "read_test" / "both").mkdir(parents=True)
    assert pairs_folder_for_reading("read_test\\only_input") == input_ / "read_test" / "only_input"
    assert pairs_folder_for_reading("read_test/both") == output / "read_test" / "both"
    with pytest.raises(ValueError, match=r"pairs_folder 'read_test/none': no such folder \(looked in .*output"):
        pairs_folder_for_reading("read_test/none")
    with pytest.raises(ValueError, match=r"is an absolute path\. Give a relative name"):
        pairs_folder_for_reading(str(input_ / "read_test" / "only_input"))
