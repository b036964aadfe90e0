"""A real headless Chromium (Debian's), the real API on loopback, the SPA on a second origin.

The SPA is the built React app (frontend/dist, from `make test`'s `vite build`). Beside it, the
static server mounts the package's own build (`/__client__/`) and axios (`/__axios__/`), so a test
can make a client of its own in the page from the same module the app bundles.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from backend.app.cli import FRONTEND_DIR
from backend.app.core.settings import PROJECT_ROOT
from backend.app.main import create_app
from backend.tests.live_server import live_server

CHROMIUM = "/usr/bin/chromium"
PACKAGE_DIR = PROJECT_ROOT / "clients" / "js"
# URL prefix -> folder, besides the app at /.
TEST_MOUNTS = {
    "/__client__/": PACKAGE_DIR / "dist",
    "/__axios__/": PACKAGE_DIR / "node_modules" / "axios" / "dist" / "esm",
}
# Without the background-networking flags Chromium keeps dialling out, and this machine has no
# network but loopback.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parent.name == "browser":
            item.add_marker(pytest.mark.browser)


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """The browser suite tests the client, not the databases: SQLite is enough here."""
    return f"sqlite:///{tmp_path / 'app.db'}"


# Module scope, not session: Playwright's sync API keeps an event loop running on the main thread
# while it is open, and the asyncio tests that follow need that thread's loop to themselves.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def serve_static(root: Path, mounts: dict[str, Path]) -> http.server.ThreadingHTTPServer:
    """A static server on a free loopback port: `root` at /, each mount at its prefix."""
    for folder in (root, *mounts.values()):
        assert folder.is_dir(), f"{folder} is missing: build it first (make test does)"

    class Handler(http.server.SimpleHTTPRequestHandler):
        def translate_path(self, path: str) -> str:
            for prefix, folder in mounts.items():
                if path.startswith(prefix):
                    rest = path[len(prefix) :].split("?")[0].split("#")[0]
                    return str(folder / rest)
            return super().translate_path(path)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def start_stack(make_settings: Callable[..., Any]) -> Iterator[Callable[..., str]]:
    """Factory: `start_stack(**setting_overrides)` starts the API and the SPA's static server and
    returns the SPA's URL, pointed at that API."""
    with ExitStack() as stack:

        def start(**overrides: Any) -> str:
            spa = serve_static(FRONTEND_DIR, TEST_MOUNTS)
            stack.callback(spa.server_close)
            stack.callback(spa.shutdown)  # runs first: callbacks unwind last-in, first-out
            spa_origin = f"http://127.0.0.1:{spa.server_address[1]}"
            settings = make_settings(cors_origins=[spa_origin], **overrides)
            api_url = stack.enter_context(live_server(create_app(settings), log_level="warning"))
            return f"{spa_origin}/index.html?api={api_url}"

        yield start


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()
