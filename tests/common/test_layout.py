"""The package layout the README and DESIGN promise, checked rather than described.

- ``core`` never imports ComfyUI (nor the pack's ``nodes``), so it imports and tests without a ComfyUI tree;
- every node class lives in a ``nodes/<method>/nodes_<stage>.py`` file with two to five nodes and is in that
  file's ``NODES`` list, which the method package and ``nodes/extension.py`` join;
- no method package imports another method's modules (``common`` and ``attention`` are shared by all);
- each ``core/<method>/__init__.py`` opens with an index that names every module of its package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COMFY_MODULES = {
    "comfy",
    "comfy_api",
    "comfy_execution",
    "comfy_extras",
    "comfyui_version",
    "execution",
    "folder_paths",
    "latent_preview",
    "node_helpers",
    "nodes",
    "server",
}
METHODS = ("s2edit", "zone", "deltaedit", "mcdm")
SHARED = ("common", "attention", "masks", "files")


def _python_files(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def _imports(path: Path) -> list[tuple[int, str]]:
    """(relative level, absolute-or-relative module) of every import in ``path``, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(0, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or ""))
    return found


def _target(path: Path, level: int, module: str) -> tuple[str, ...]:
    """The repository-relative module parts a relative import in ``path`` names."""
    base = path.relative_to(REPO).parent.parts
    base = base[: len(base) - (level - 1)]
    return (*base, *[part for part in module.split(".") if part])


@pytest.mark.parametrize("path", _python_files("core"), ids=lambda p: str(p.relative_to(REPO)))
def test_core_never_imports_comfyui(path: Path) -> None:
    for level, module in _imports(path):
        if level == 0:
            assert module.split(".")[0] not in COMFY_MODULES, f"{path.relative_to(REPO)} imports {module}"
        else:
            target = _target(path, level, module)
            assert target[0] == "core", f"{path.relative_to(REPO)} imports {'.'.join(target)} from outside core"


def test_every_node_lives_in_a_stage_file_of_its_method(comfy: object) -> None:
    from precise_edit.nodes.extension import NODES

    files: dict[str, list[str]] = {}
    for node in NODES:
        parts = node.__module__.split(".")
        assert parts[:2] == ["precise_edit", "nodes"] and len(parts) == 4, node.__module__
        assert parts[3].startswith("nodes_"), f"{node.__name__} lives in {node.__module__}, not a nodes_<stage>.py"
        files.setdefault(node.__module__, []).append(node.__name__)
    on_disk = {
        "precise_edit.nodes." + ".".join(p.relative_to(REPO / "nodes").with_suffix("").parts)
        for p in (REPO / "nodes").glob("*/nodes_*.py")
    }
    assert set(files) == on_disk, "a nodes_<stage>.py file whose nodes are not registered, or the reverse"
    for module, names in files.items():
        assert 2 <= len(names) <= 5, f"{module} holds {len(names)} nodes: {names}"
    ids = [node.define_schema().node_id for node in NODES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("layer", ["core", "nodes"])
def test_no_method_imports_another_method(layer: str) -> None:
    crossings = []
    for path in _python_files(layer):
        own = path.relative_to(REPO / layer).parts
        if len(own) < 2 or own[0] not in METHODS:
            continue
        for level, module in _imports(path):
            if level == 0:
                continue
            target = _target(path, level, module)
            if len(target) > 1 and target[1] in METHODS and target[1] != own[0]:
                crossings.append(f"{path.relative_to(REPO)} imports {'.'.join(target)}")
    assert not crossings, "\n".join(crossings)


@pytest.mark.parametrize("method", [*METHODS, "attention", "masks"])
def test_core_package_opens_with_an_index_of_its_modules(method: str) -> None:
    package = REPO / "core" / method
    index = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    missing = [p.stem for p in sorted(package.glob("*.py")) if p.stem != "__init__" and f"{p.stem}." not in index]
    assert not missing, f"core/{method}/__init__.py does not index {missing}"
