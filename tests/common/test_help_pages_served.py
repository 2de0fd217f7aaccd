"""Help pages (js/docs/<NodeId>.md) are served where ComfyUI's frontend fetches them, whatever the pack's folder is
called: ``/extensions/<folder>/docs/<NodeId>.md``, the folder read from the node's ``python_module``
("custom_nodes.<folder>", a ``@version`` suffix dropped), as the frontend's node help service does."""

from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]


def help_page_urls(server) -> dict[str, str]:
    """Node id → the help page URL the frontend asks the server for, for every node of the pack."""
    urls = {}
    for node_id, info in server.object_info().items():
        if node_id.startswith("PreciseEdit_"):
            parent, folder = info["python_module"].split(".")[:2]
            assert parent == "custom_nodes", info["python_module"]
            urls[node_id] = f"{server.url}/extensions/{folder.split('@')[0]}/docs/{node_id}.md"
    return urls


def assert_help_pages_served(server, folder: str) -> None:
    urls = help_page_urls(server)
    assert sorted(urls) == sorted(page.stem for page in (REPO / "js" / "docs").glob("*.md"))
    for node_id, url in urls.items():
        assert url.startswith(f"{server.url}/extensions/{folder}/docs/"), url
        response = requests.get(url, timeout=30)
        assert response.status_code == 200, f"{url}: HTTP {response.status_code}"
        assert response.content == (REPO / "js" / "docs" / f"{node_id}.md").read_bytes(), url


def test_help_pages_are_served_under_the_checkout_folder_name(comfy_server):
    """The test server links the pack as ``precise-edit-checkout``, not its project name ``precise-edit``."""
    from harness.server import CHECKOUT_NAME

    assert_help_pages_served(comfy_server, CHECKOUT_NAME)


def test_help_pages_are_served_under_another_folder_name(session_dir, tiny_models, monkeypatch):
    """A user's clone folder, e.g. ``ComfyUI_Precise-Edit``."""
    import harness.server
    from harness.server import ComfyServer

    monkeypatch.setattr(harness.server, "CHECKOUT_NAME", "ComfyUI_Precise-Edit")
    with ComfyServer(session_dir / "renamed-server", session_dir / "comfy" / "models") as server:
        assert_help_pages_served(server, "ComfyUI_Precise-Edit")
