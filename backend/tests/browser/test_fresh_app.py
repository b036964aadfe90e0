"""The packed @myideas/client installed the way a user installs it: a fresh app outside the
repository (`npm init -y`, then the README's install commands), type-checked with `tsc --noEmit`,
built with `vite build`, signs in and lists items in Chromium against the live API. The app's
page is the README's React snippet; the README's plain-client snippet is type-checked in the
same app and run in the page."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from backend.app.core.settings import PROJECT_ROOT
from backend.app.main import create_app
from backend.tests.browser.conftest import PACKAGE_DIR, serve_static
from backend.tests.helpers import PASSWORD, unique_email
from backend.tests.live_server import live_server

# The build tools, at the versions of frontend/package.json (React comes from the README's line).
DEV_DEPENDENCIES = [
    "vite@8.3.8",
    "@vitejs/plugin-react@6.3.0",
    "typescript@5.9.3",
    "@types/react@19.3.0",
    "@types/react-dom@19.3.0",
]

INDEX_HTML = """<!doctype html>
<html lang="en">
  <head><meta charset="utf-8" /><title>Fresh app</title></head>
  <body><div id="root"></div><script type="module" src="/src/main.tsx"></script></body>
</html>
"""

README_SECTION = (PROJECT_ROOT / "README.md").read_text().split("## The browser client")[1]
README_SECTION = README_SECTION.split("\n## ")[0]
README_DEFAULT_URL = '"http://localhost:8000"'
# In the test the API is on a random port: the page reads it from `?api=`, as the demo does.
PAGE_API_URL = 'new URLSearchParams(location.search).get("api")!'


def readme_block(language: str) -> str:
    """The one fenced block of `language` in the README's "The browser client" section."""
    blocks = re.findall(rf"```{language}\n(.*?)```", README_SECTION, flags=re.DOTALL)
    assert len(blocks) == 1, f"one {language} block expected in The browser client section"
    return str(blocks[0])


# tsc fails on these if a public name gives `any` (`exactly<T>()(value)`: value is exactly T).
TYPE_CHECKS_TS = """import { createApiClient } from "@myideas/client";
import type { ItemList, PublicSession } from "@myideas/client";
import { useApi, useAuth } from "@myideas/client/react";
import type { Api, AuthState } from "@myideas/client/react";

type Equal<A, B> =
  (<G>() => G extends A ? 1 : 2) extends <G>() => G extends B ? 1 : 2 ? true : false;
function exactly<T>() {
  return <U,>(value: U, ..._: Equal<T, U> extends true ? [] : [never]): U => value;
}

const client = createApiClient({ baseUrl: "http://localhost:8000" });
export async function checks(): Promise<void> {
  exactly<PublicSession>()(await client.signin({ email: "a@example.com", password: "p" }));
  exactly<ItemList>()(await client.listItems());
  exactly<PublicSession | null>()(await client.restoreSession());
}
export function useChecks(): void {
  exactly<AuthState>()(useAuth());
  exactly<Api>()(useApi());
}
"""

VITE_CONFIG = """import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({ plugins: [react()] });
"""

TSCONFIG = {
    "compilerOptions": {
        "target": "ES2022",
        "lib": ["ES2022", "DOM", "DOM.Iterable"],
        "module": "ESNext",
        "moduleResolution": "Bundler",
        "jsx": "react-jsx",
        "strict": True,
        "noEmit": True,
        "skipLibCheck": False,
        "types": [],
    },
    "include": ["src"],
}


def run(command: list[str], cwd: Path) -> str:
    completed = subprocess.run(  # noqa: S603 - fixed commands, no shell
        command, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert completed.returncode == 0, f"{' '.join(command)}:\n{completed.stdout}{completed.stderr}"
    return completed.stdout


@pytest.fixture(scope="module")
def fresh_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Makes the app in a temporary folder with the README's commands and snippets, type-checks
    and builds it; returns its dist."""
    npm = shutil.which("npm")
    assert npm, "npm is needed"
    app = tmp_path_factory.mktemp("fresh-app")
    run([npm, "init", "-y"], app)
    for line in readme_block("sh").strip().splitlines():
        command = shlex.split(line.replace("./clients/js", str(PACKAGE_DIR)))
        assert command[0] == "npm", line
        run([npm, *command[1:], "--no-audit", "--no-fund", "--loglevel=error"], app)
    install = [npm, "install", "--save-dev", "--no-audit", "--no-fund", "--loglevel=error"]
    run([*install, *DEV_DEPENDENCIES], app)
    (app / "src").mkdir()
    (app / "index.html").write_text(INDEX_HTML)
    page = readme_block("tsx")
    assert README_DEFAULT_URL in page
    (app / "src" / "main.tsx").write_text(page.replace(README_DEFAULT_URL, PAGE_API_URL))
    (app / "src" / "type-checks.tsx").write_text(TYPE_CHECKS_TS)
    # The plain-client snippet is type-checked here (email and password are the reader's).
    snippet = "declare const email: string, password: string;\n" + readme_block("ts")
    (app / "src" / "client-snippet.ts").write_text(snippet)
    (app / "vite.config.ts").write_text(VITE_CONFIG)
    (app / "tsconfig.json").write_text(json.dumps(TSCONFIG, indent=2))

    run([str(app / "node_modules" / ".bin" / "tsc"), "--noEmit", "-p", "."], app)
    run([str(app / "node_modules" / ".bin" / "vite"), "build", "--logLevel", "error"], app)
    return app / "dist"


def as_page_function(snippet: str) -> str:
    """The README's plain-client snippet as a function for `page.evaluate`: its imports become
    dynamic imports of the installed package, its API URL the page's `?api=`."""
    body = re.sub(
        r'^import (\{[^}]*\}) from "@myideas/client";$',
        r'const \1 = await import("/__client__/index.js");',
        snippet,
        flags=re.MULTILINE,
    )
    assert "import " not in body.replace("await import(", ""), body
    return (
        "async ({email, password}) => {\n"
        + body.replace(README_DEFAULT_URL, PAGE_API_URL.rstrip("!"))
        + "\n}"
    )


def seed_user_with_items(api_url: str, titles: list[str]) -> str:
    """A user made through the HTTP API, with items; returns its email."""
    email = unique_email()
    with httpx.Client(base_url=api_url) as http:
        csrf = http.get("/auth/csrf").json()["csrfToken"]
        headers = {"X-CSRF-Token": csrf}
        http.post("/auth/signup", json={"email": email, "password": PASSWORD}, headers=headers)
        signin = http.post(
            "/auth/signin", json={"email": email, "password": PASSWORD}, headers=headers
        )
        bearer = {"Authorization": f"Bearer {signin.json()['accessToken']}"}
        for title in titles:
            assert http.post("/items", json={"title": title}, headers=bearer).status_code == 201
    return email


@pytest.fixture
def fresh_stack(fresh_app: Path, make_settings: Callable[..., Any]) -> Iterator[tuple[str, str]]:
    """The fresh app's static server and the API; yields (the app's URL, the API's URL)."""
    with ExitStack() as stack:
        # The installed package's own files too, for the plain-client snippet run in the page.
        installed = fresh_app.parent / "node_modules" / "@myideas" / "client" / "dist"
        spa = serve_static(fresh_app, {"/__client__/": installed})
        stack.callback(spa.server_close)
        stack.callback(spa.shutdown)
        origin = f"http://127.0.0.1:{spa.server_address[1]}"
        settings = make_settings(cors_origins=[origin])
        api_url = stack.enter_context(live_server(create_app(settings), log_level="warning"))
        yield f"{origin}/index.html?api={api_url}", api_url


class TestFreshApp:
    def test_the_packed_package_signs_in_and_lists_items_in_a_fresh_vite_app(
        self, page: Page, fresh_stack: tuple[str, str]
    ):
        url, api_url = fresh_stack
        email = seed_user_with_items(api_url, ["From the tarball", "Second idea"])
        page.goto(url)

        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()

        expect(page.get_by_text(f"Hello {email}")).to_be_visible()
        items = page.get_by_role("list", name="Items").get_by_role("listitem")
        expect(items).to_have_count(2)
        expect(items.filter(has_text="From the tarball")).to_be_visible()
        expect(items.filter(has_text="Second idea")).to_be_visible()
        page.reload()
        expect(page.get_by_text(f"Hello {email}")).to_be_visible()  # restored on boot
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()

    def test_the_readme_client_snippet_runs_against_the_live_api(
        self, page: Page, fresh_stack: tuple[str, str]
    ):
        url, api_url = fresh_stack
        email = seed_user_with_items(api_url, [])
        page.goto(url)
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        logged: list[str] = []
        page.on("console", lambda message: logged.append(message.text))
        statuses: list[tuple[str, str, int]] = []
        page.on(
            "response",
            lambda r: statuses.append((r.request.method, r.url.removeprefix(api_url), r.status)),
        )

        page.evaluate(as_page_function(readme_block("ts")), {"email": email, "password": PASSWORD})

        assert ("POST", "/auth/signin", 200) in statuses
        assert ("POST", "/items", 201) in statuses
        assert ("GET", "/auth/sessions", 200) in statuses
        assert ("POST", "/auth/signup", 409) in statuses
        assert statuses[-1] == ("POST", "/auth/logout", 200)
        assert "user_already_exists" in logged
        assert [text for text in logged if text.startswith("signed-out signout")]
