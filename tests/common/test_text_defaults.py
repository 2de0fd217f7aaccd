"""Every text input of the pack has a default, so a new node shows an empty box rather than ``text: undefined``."""

from harness.node_docs import pack_node_classes


def test_every_string_input_has_a_default(comfy):
    from precise_edit.nodes.common.comfy_node_api import io

    missing = [
        f"{cls.GET_SCHEMA().node_id}.{item.id}"
        for cls in pack_node_classes()
        for item in cls.GET_SCHEMA().inputs
        if isinstance(item, io.String.Input) and item.default is None
    ]
    assert missing == []
