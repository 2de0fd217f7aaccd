"""What every node of the pack owes its users: a prefixed id, a category, a description, tooltips on every input
and output, a help page, and a line in the README that matches its schema."""

from pathlib import Path

import pytest

from harness.node_docs import node_list, pack_node_classes, readme_with_node_list

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def schemas(comfy):
    return [cls.GET_SCHEMA() for cls in pack_node_classes()]


def test_every_node_is_prefixed_categorised_and_described(schemas):
    assert schemas
    ids = [schema.node_id for schema in schemas]
    assert len(ids) == len(set(ids))
    for schema in schemas:
        assert schema.node_id.startswith("PreciseEdit_"), schema.node_id
        assert schema.category.startswith("Precise Edit/"), schema.node_id
        assert schema.display_name and len(schema.description) > 40, schema.node_id


def test_every_input_and_output_has_a_tooltip(schemas):
    for schema in schemas:
        for item in [*schema.inputs, *schema.outputs]:
            assert item.tooltip and len(item.tooltip) > 10, f"{schema.node_id}.{item.id}"


def test_every_node_has_a_help_page_that_names_it(schemas):
    for schema in schemas:
        page = REPO / "js" / "docs" / f"{schema.node_id}.md"
        assert page.is_file(), f"missing help page {page.relative_to(REPO)}"
        assert page.read_text().startswith(f"# {schema.display_name}\n"), page.name


def test_readme_lists_every_node_as_generated(schemas):
    readme = (REPO / "README.md").read_text()
    assert readme_with_node_list(readme) == readme, "README node list is stale: run python -m harness.node_docs"
    assert node_list().count("\n") + 1 == len(schemas)


def test_the_server_loads_the_checkout_under_another_folder_name(comfy_server, schemas):
    info = comfy_server.object_info()
    for schema in schemas:
        assert info[schema.node_id]["category"] == schema.category
    assert info["PreciseEdit_CaptureCrossAttention"]["output"] == ["MODEL", "PE_ATTENTION", "CONDITIONING"]
