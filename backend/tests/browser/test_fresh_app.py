"""The packed @myideas/client installed the way a user installs it: a fresh app outside the
repository (`npm init -y`, the tarball, React, Vite), type-checked with `tsc --noEmit`, built with
`vite build`, signs in and lists items in Chromium against the live API."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from backend.app.main import create_app
from backend.tests.browser.conftest import PACKAGE_DIR, serve_static
from backend.tests.helpers import PASSWORD, unique_email
from backend.tests.live_server import live_server

# The versions of frontend/package.json: the app a user would make today.
DEPENDENCIES = [
    "react@19.3.1",
    "react-dom@19.3.1",
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

# What the README shows: a client, the provider, useAuth, useApi and RequireAuth. The
# `exactly` checks make tsc fail if a public name gives `any`.
MAIN_TSX = """import { useEffect, useState } from "react";
import type { ReactNode } from "react";
import { createRoot } from "react-dom/client";
import { createApiClient } from "@myideas/client";
import type { Item, ItemList, PublicSession } from "@myideas/client";
import { AuthProvider, RequireAuth, useApi, useAuth } from "@myideas/client/react";

type Equal<A, B> =
  (<G>() => G extends A ? 1 : 2) extends <G>() => G extends B ? 1 : 2 ? true : false;
function exactly<T>() {
  return <U,>(value: U, ..._: Equal<T, U> extends true ? [] : [never]): U => value;
}

const baseUrl = new URLSearchParams(location.search).get("api") ?? "http://localhost:8000";
const client = createApiClient({ baseUrl });

function SignIn(): ReactNode {
  const { signIn } = useAuth();
  const [error, setError] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const submit = async () => {
    try {
      exactly<PublicSession>()(await signIn({ email, password }));
    } catch (caught) {
      setError(caught instanceof Error ? caught.message : String(caught));
    }
  };
  return (
    <form onSubmit={(event) => { event.preventDefault(); void submit(); }}>
      <label>Email <input value={email} onChange={(e) => setEmail(e.target.value)} /></label>
      <label>
        Password
        <input type="password" value={password} onChange={(e) => setPassword(e.target.value)} />
      </label>
      <button type="submit">Sign in</button>
      <p role="alert">{error}</p>
    </form>
  );
}

function Items(): ReactNode {
  const { user, signOut } = useAuth();
  const api = useApi();
  const [items, setItems] = useState<Item[]>([]);
  useEffect(() => {
    void api.listItems().then((list) => setItems(exactly<ItemList>()(list).items));
  }, [api]);
  return (
    <section>
      <p>Hello {user?.email}</p>
      <ul aria-label="Items">{items.map((item) => <li key={item.id}>{item.title}</li>)}</ul>
      <button type="button" onClick={() => void signOut()}>Sign out</button>
    </section>
  );
}

createRoot(document.getElementById("root")!).render(
  <AuthProvider client={client}>
    <RequireAuth fallback={<SignIn />} loading={<p>Loading…</p>}>
      <Items />
    </RequireAuth>
  </AuthProvider>,
);
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
    """Packs the package, makes the app in a temporary folder and builds it; returns its dist."""
    npm = shutil.which("npm")
    assert npm, "npm is needed"
    folder = tmp_path_factory.mktemp("fresh-app")
    packed = json.loads(
        run([npm, "pack", "--json", "--pack-destination", str(folder)], PACKAGE_DIR)
    )
    tarball = folder / packed[0]["filename"]
    app = folder / "app"
    app.mkdir()
    run([npm, "init", "-y"], app)
    run(
        [
            npm,
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            str(tarball),
            *DEPENDENCIES,
        ],
        app,
    )
    (app / "src").mkdir()
    (app / "index.html").write_text(INDEX_HTML)
    (app / "src" / "main.tsx").write_text(MAIN_TSX)
    (app / "vite.config.ts").write_text(VITE_CONFIG)
    (app / "tsconfig.json").write_text(json.dumps(TSCONFIG, indent=2))

    run([str(app / "node_modules" / ".bin" / "tsc"), "--noEmit", "-p", "."], app)
    run([str(app / "node_modules" / ".bin" / "vite"), "build", "--logLevel", "error"], app)
    return app / "dist"


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
        spa = serve_static(fresh_app, {})
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
