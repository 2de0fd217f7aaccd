"""Browser tests: the real ComfyUI frontend (the comfyui_frontend_package the server serves) in headless Chromium,
driven by Playwright for Python pointed at the Debian package's /usr/bin/chromium.

Every test here is marked ``browser`` (and ``server``, as it uses the server). They skip, saying why, only when no
Chromium is installed (``apt-get install chromium``; ``PRECISE_EDIT_CHROMIUM`` names another binary).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.append(str(HERE))

from comfy_page import ComfyPage  # noqa: E402

CHROMIUM = Path(os.environ.get("PRECISE_EDIT_CHROMIUM", "/usr/bin/chromium"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """One headless Chromium per module: Playwright's sync API keeps an event loop running in this thread while it
    is open, and the in-process ComfyUI of later tests starts with asyncio.run, which refuses to run inside one."""
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: `apt-get install chromium` (or set PRECISE_EDIT_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]
        )
        yield browser
        browser.close()


@pytest.fixture
def comfy_page(chromium, comfy_server) -> Iterator[ComfyPage]:
    """A fresh page on the test server's frontend; screenshots on failure go to the server's folder."""
    context = chromium.new_context(viewport={"width": 1600, "height": 1000})
    page = ComfyPage(context.new_page(), comfy_server)
    yield page
    context.close()
