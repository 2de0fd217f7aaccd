"""Convert workflows as the ComfyUI frontend saves them (UI format) to the API format that /prompt executes.

The widget rules follow frontend 1.32: ``widgets_values`` holds one value per widget input in ``input_order``
(required, then optional), linked widget inputs included; an INT with ``control_after_generate`` (default for inputs
named seed / noise_seed) is followed by its control value, a COMBO with ``control_after_generate`` by the control
value and a filter string, and an image/video upload COMBO by the upload button's value. Values after the last
slot belong to display-only widgets (text previews, 3D viewers) and are ignored, as the frontend ignores them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any, NamedTuple

WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
UPLOAD_OPTIONS = ("image_upload", "animated_image_upload", "video_upload")
DROPPED_TYPES = frozenset({"Note", "MarkdownNote"})
MODE_MUTED = 2
MODE_BYPASSED = 4


class _Inline(NamedTuple):
    """A constant that replaces a link (the value of a PrimitiveNode)."""

    value: Any


def _is_combo(kind: Any) -> bool:
    return isinstance(kind, list) or kind == "COMBO"


def _widget_width(name: str, spec: list[Any]) -> int:
    """How many entries of ``widgets_values`` the input takes: 0 for a socket-only input, else 1 plus extras."""
    kind = spec[0]
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if not (_is_combo(kind) or kind in WIDGET_TYPES) or options.get("forceInput"):
        return 0
    control = options.get("control_after_generate")
    if kind == "INT":
        return 2 if (control if control is not None else name in ("seed", "noise_seed")) else 1
    if _is_combo(kind):
        return 1 + (2 if control else 0) + (1 if any(options.get(key) for key in UPLOAD_OPTIONS) else 0)
    return 1


def _links(workflow: dict[str, Any]) -> dict[int, tuple[int, int, str]]:
    """Link id -> (origin node id, origin slot, type), from the list or the object form of ``links``."""
    links = {}
    for link in workflow.get("links") or []:
        if isinstance(link, dict):
            links[link["id"]] = (link["origin_id"], link["origin_slot"], link.get("type", "*"))
        else:
            links[link[0]] = (link[1], link[2], link[5] if len(link) > 5 else "*")
    return links


class _Converter:
    def __init__(self, workflow: dict[str, Any], object_info: dict[str, Any]) -> None:
        self.object_info = object_info
        self.nodes = {node["id"]: node for node in workflow.get("nodes", [])}
        self.links = _links(workflow)
        self.subgraphs = {graph.get("id") for graph in (workflow.get("definitions") or {}).get("subgraphs", [])}

    def source(self, link_id: int | None, seen: frozenset[int] = frozenset()) -> list[Any] | _Inline | None:
        """What feeds a linked input: ``[node_id, slot]``, a PrimitiveNode's value, or None when nothing does."""
        if link_id is None or link_id not in self.links or link_id in seen:
            return None
        seen = seen | {link_id}
        origin_id, slot, link_type = self.links[link_id]
        origin = self.nodes[origin_id]
        mode = origin.get("mode", 0)
        if mode == MODE_MUTED:
            return None
        if origin["type"] == "Reroute":
            return self.source(origin["inputs"][0].get("link"), seen)
        if origin["type"] == "PrimitiveNode":
            return _Inline(origin["widgets_values"][0])
        if mode == MODE_BYPASSED:
            index = self.bypass_input(origin, slot, link_type)
            return None if index is None else self.source(origin["inputs"][index].get("link"), seen)
        return [str(origin_id), slot]

    @staticmethod
    def bypass_input(node: dict[str, Any], slot: int, link_type: str) -> int | None:
        """The input a bypassed node passes on to output ``slot``: the same index if its type fits, else the first
        input of the link's type."""
        inputs = node.get("inputs") or []
        outputs = node.get("outputs") or []
        output_type = outputs[slot].get("type", link_type) if slot < len(outputs) else link_type
        if "*" in (link_type, output_type):
            return slot if slot < len(inputs) else (0 if inputs else None)
        if slot < len(inputs) and inputs[slot].get("type") == output_type:
            return slot
        for index, node_input in enumerate(inputs):
            if node_input.get("type") == link_type:
                return index
        return None

    def widget_values(self, node: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
        """The node's widget inputs by name, read from ``widgets_values`` with the layout of its definition."""
        values = node.get("widgets_values")
        if isinstance(values, dict):
            return dict(values)
        values = list(values or [])
        widths = [
            (name, _widget_width(name, info["input"][section][name]))
            for section in ("required", "optional")
            for name in info["input_order"].get(section, [])
        ]
        expected = sum(width for _, width in widths)
        if len(values) < expected:
            layout = [name if width == 1 else f"{name}(+{width - 1})" for name, width in widths if width]
            raise ValueError(
                f"node {node['id']} ({node['type']}): {len(values)} widgets_values {values!r} are fewer than the "
                f"{expected} widget slots {layout} of its current definition"
            )
        result, position = {}, 0
        for name, width in widths:
            if width:
                result[name] = values[position]
                position += width
        return result

    def convert_node(self, node: dict[str, Any]) -> dict[str, Any]:
        """One API-format node: widget values, then every input whose link resolves."""
        info = self.object_info.get(node["type"])
        if info is None:
            raise ValueError(f"node {node['id']} has type {node['type']!r}, which this ComfyUI does not know")
        inputs = self.widget_values(node, info)
        for node_input in node.get("inputs") or []:
            source = self.source(node_input.get("link"))
            if source is not None:
                name = node_input.get("widget", {}).get("name", node_input["name"])
                inputs[name] = source.value if isinstance(source, _Inline) else source
        converted: dict[str, Any] = {"class_type": node["type"], "inputs": inputs}
        if node.get("title"):
            converted["_meta"] = {"title": node["title"]}
        return converted

    def convert(self) -> dict[str, dict[str, Any]]:
        prompt = {}
        for node_id, node in self.nodes.items():
            kind = node["type"]
            if kind in self.subgraphs:
                raise ValueError(f"node {node_id} is a subgraph; expand subgraphs before converting")
            if kind in DROPPED_TYPES or kind in ("Reroute", "PrimitiveNode"):
                continue
            if node.get("mode", 0) in (MODE_MUTED, MODE_BYPASSED):
                continue
            prompt[str(node_id)] = self.convert_node(node)
        return prompt


def ui_to_api(workflow: dict[str, Any], object_info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Convert a UI-format workflow to an API-format prompt using the node definitions of ``object_info``.

    Reroutes are followed, PrimitiveNode values inlined, Note/MarkdownNote and muted nodes dropped, and consumers
    of a bypassed node connected to its input of the same type. An input whose link leads to nothing (a muted node,
    a bypassed node without a matching input) keeps its widget value, or is left out, as the frontend does. A node
    the user renamed keeps its title in ``_meta``, as the frontend's API export writes it.
    """
    return _Converter(workflow, object_info).convert()


def object_info_inprocess() -> dict[str, dict[str, Any]]:
    """The /object_info of the ComfyUI bootstrapped in this process (JSON round-tripped, as the server sends it)."""
    import folder_paths
    from comfy_api.internal import _ComfyNodeInternal

    import nodes

    result = {}
    with folder_paths.cache_helper:
        for name, cls in nodes.NODE_CLASS_MAPPINGS.items():
            try:
                if issubclass(cls, _ComfyNodeInternal):
                    info = cls.GET_NODE_INFO_V1()
                else:
                    info = _v1_node_info(name, cls)
                result[name] = json.loads(json.dumps(info))
            except Exception:
                logging.exception("object_info of %s failed", name)
    return result


def _v1_node_info(name: str, cls: type) -> dict[str, Any]:
    """Server.py's description of a V1 node class."""
    import nodes

    inputs = cls.INPUT_TYPES()
    info = {
        "input": inputs,
        "input_order": {key: list(value.keys()) for key, value in inputs.items()},
        "output": cls.RETURN_TYPES,
        "output_is_list": getattr(cls, "OUTPUT_IS_LIST", [False] * len(cls.RETURN_TYPES)),
        "output_name": getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES),
        "name": name,
        "display_name": nodes.NODE_DISPLAY_NAME_MAPPINGS.get(name, name),
        "description": getattr(cls, "DESCRIPTION", ""),
        "python_module": getattr(cls, "RELATIVE_PYTHON_MODULE", "nodes"),
        "category": getattr(cls, "CATEGORY", "sd"),
        "output_node": getattr(cls, "OUTPUT_NODE", False) is True,
    }
    for attribute, key in (("OUTPUT_TOOLTIPS", "output_tooltips"), ("API_NODE", "api_node")):
        if hasattr(cls, attribute):
            info[key] = getattr(cls, attribute)
    for attribute in ("DEPRECATED", "EXPERIMENTAL"):
        if getattr(cls, attribute, False):
            info[attribute.lower()] = True
    info.update(_later_v1_fields(cls))
    return info


def _later_v1_fields(cls: type) -> dict[str, Any]:
    """The V1 description's fields that later ComfyUIs added, where this one has them (its ``NodeInfoV1`` lists
    them): server.py always sends the first three, the last two only when the class sets them."""
    from precise_edit.nodes.common.comfy_node_api import io

    fields = {field.name for field in dataclasses.fields(io.NodeInfoV1)}
    info = {
        "is_input_list": getattr(cls, "INPUT_IS_LIST", False),
        "has_intermediate_output": getattr(cls, "HAS_INTERMEDIATE_OUTPUT", False) is True,
        "search_aliases": getattr(cls, "SEARCH_ALIASES", []),
    }
    if getattr(cls, "DEV_ONLY", False):
        info["dev_only"] = True
    if hasattr(cls, "ESSENTIALS_CATEGORY"):
        info["essentials_category"] = cls.ESSENTIALS_CATEGORY
    return {key: value for key, value in info.items() if key in fields}
