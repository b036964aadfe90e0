"""A real headless Chromium (Debian's), the real API on loopback, the SPA on a second origin."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from backend.app.cli import FRONTEND_DIR, serve_frontend
from backend.app.main import create_app
from backend.tests.live_server import live_server

CHROMIUM = "/usr/bin/chromium"
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


@pytest.fixture
def start_stack(make_settings: Callable[..., Any]) -> Iterator[Callable[..., str]]:
    """Factory: `start_stack(**setting_overrides)` starts the API and the SPA's static server and
    returns the SPA's URL, pointed at that API."""
    with ExitStack() as stack:

        def start(**overrides: Any) -> str:
            spa = serve_frontend("127.0.0.1", 0, FRONTEND_DIR)
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
