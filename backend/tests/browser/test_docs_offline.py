"""/docs and /redoc render in Chromium with every request off loopback refused: no CDN needed."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from backend.app.main import create_app
from backend.tests.live_server import live_server

LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}
# ReDoc's bundle adds its maker's logo to the menu's footer from their CDN, and removes the image
# when it fails to load: branding, not something the page needs to render.
REDOC_BRANDING = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture
def api_url(make_settings) -> Iterator[str]:
    with live_server(create_app(make_settings()), log_level="warning") as url:
        yield url


@pytest.fixture
def offline(browser: Browser) -> Iterator[tuple[Page, list[str], list[str]]]:
    """A page whose requests to any host but loopback are aborted; yields it, the URLs it
    asked for and the ones refused."""
    context = browser.new_context()
    requested: list[str] = []
    refused: list[str] = []

    def only_loopback(route: Route) -> None:
        url = route.request.url
        requested.append(url)
        if urlsplit(url).hostname in LOOPBACK:
            route.continue_()
        else:
            refused.append(url)
            route.abort("internetdisconnected")

    context.route("**/*", only_loopback)
    yield context.new_page(), requested, refused
    context.close()


def _asset_urls(page: Page) -> list[str]:
    urls: list[str] = page.eval_on_selector_all(
        "script[src], link[href], img[src]",
        "nodes => nodes.map(node => node.src || node.href)",
    )
    return urls


class TestOfflineDocs:
    def test_swagger_ui_renders_the_operations_with_no_network(self, api_url, offline):
        """Swagger UI's assets come from the app: the operations show, nothing goes off-host."""
        page, requested, refused = offline

        page.goto(f"{api_url}/docs")

        expect(page.get_by_text("/auth/signin", exact=True)).to_be_visible()
        expect(page.get_by_text("/items/{item_id}", exact=True).first).to_be_visible()
        assets = _asset_urls(page)
        assert assets
        assert all(url.startswith(f"{api_url}/") for url in assets), assets
        assert f"{api_url}/openapi.json" in requested
        assert refused == []

    def test_redoc_renders_the_operations_with_no_network(self, api_url, offline):
        """ReDoc too: its bundle is the app's, no web font is fetched, and only its maker's logo
        is asked for off-host (and left out when refused)."""
        page, _requested, refused = offline

        page.goto(f"{api_url}/redoc")

        expect(page.get_by_role("heading", name="My Ideas auth")).to_be_visible()
        # Operations by their summaries (the paths are also in the description above them);
        # ReDoc renders the first ones at once and lists the others in its menu.
        expect(page.get_by_role("heading", name="Get Csrf Token")).to_be_visible()
        page.get_by_role("menuitem", name="auth").click()
        expect(page.get_by_role("menuitem", name="Sign In", exact=True)).to_be_visible()
        assert all(url.startswith(f"{api_url}/") for url in _asset_urls(page))
        assert set(refused) <= {REDOC_BRANDING}
