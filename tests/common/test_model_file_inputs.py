"""Loaders of the pack's own model folders refuse a file that is not there when the prompt is validated, before
anything runs, naming the folder and what it holds (ComfyUI 0.3.75 never checks a V3 combo's value itself)."""

import pytest

from harness.errors import PromptFailed

ABSENT = "not-downloaded-yet.safetensors"
LOADERS = [
    ("PreciseEdit_SAMLoader", "sam_name", "sams"),
    ("PreciseEdit_JointCLIPLoader", "clip_name", "clip_joint"),
    ("PreciseEdit_MCDMLoader", "mcdm_name", "mcdm"),
]


@pytest.mark.parametrize(("class_type", "input_name", "folder"), LOADERS)
def test_a_missing_model_file_is_refused_at_validation(run_graph, tiny_models, class_type, input_name, folder):
    with pytest.raises(PromptFailed) as failed:
        run_graph({"1": {"class_type": class_type, "inputs": {input_name: ABSENT}}}, outputs=["1"])
    message = str(failed.value)
    assert failed.value.node_id is None, f"the loader ran before the missing file was reported:\n{message}"
    assert f"{input_name} - '{ABSENT}' is not in models/{folder} (" in message
    assert "it holds '" in message  # the stand-ins the folder lists, so the user sees what to pick instead


@pytest.mark.parametrize(("class_type", "input_name", "folder"), LOADERS)
def test_a_listed_model_file_passes_the_check(comfy, tiny_models, class_type, input_name, folder):
    import folder_paths

    import nodes

    node = nodes.NODE_CLASS_MAPPINGS[class_type]
    if folder == "mcdm":
        from precise_edit.nodes.mcdm.nodes_train import list_mcdm_entries

        listed = list_mcdm_entries()
    else:
        listed = folder_paths.get_filename_list(folder)
    assert listed, f"the stand-ins put no file into models/{folder}"
    assert node.validate_inputs(**{input_name: listed[0]}) is True


def test_an_empty_folder_says_so_and_where_it_is(comfy):
    import folder_paths

    from precise_edit.nodes.common.listed_model_file import listed_model_file

    message = listed_model_file("sam_vit_h_4b8939.pth", [], "sams")
    assert message.startswith("'sam_vit_h_4b8939.pth' is not in models/sams (")
    assert "it holds no model file yet" in message
    assert all(path in message for path in folder_paths.get_folder_paths("sams"))
