"""The README agrees with the code: every route, every error code and every setting it lists."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from fastapi.routing import APIRoute

from backend.app.core.errors import ErrorCode
from backend.app.core.settings import PROJECT_ROOT, Settings
from backend.app.main import create_app
from backend.tests.live_server import live_server

README = (PROJECT_ROOT / "README.md").read_text()
# Codes of the framework's own errors (500, 405, other HTTP errors): the README documents them
# as "the same body", not one by one.
_FRAMEWORK_CODES = {ErrorCode.INTERNAL_ERROR, ErrorCode.HTTP_ERROR, ErrorCode.METHOD_NOT_ALLOWED}


class TestReadme:
    def test_every_setting_is_documented_and_every_documented_one_exists(self):
        configuration = README.split("## Configuration")[1].split("\n## ")[0]
        documented = set(re.findall(r"^\| `([A-Z_]+)`", configuration, flags=re.MULTILINE))
        documented |= set(re.findall(r"`(SUPABASE_[A-Z_]+)`", configuration))

        fields = {name.upper() for name in Settings.model_fields}

        assert documented == fields

    def test_every_route_is_documented(self):
        app = create_app(Settings(_env_file=None))
        routes = {
            (method, route.path)
            for route in app.routes
            if isinstance(route, APIRoute)
            for method in route.methods or ()
        }

        for method, path in routes:
            readme_path = path.replace("{item_id}", "{id}")
            assert re.search(rf"`{method}[^`|]*{re.escape(readme_path)}`", README) or re.search(
                rf"{method}`[^|]*`{re.escape(readme_path)}`", README
            ), f"{method} {path} is not in the README's contract table"

    @pytest.mark.parametrize("code", sorted(set(ErrorCode) - _FRAMEWORK_CODES))
    def test_every_client_facing_error_code_is_documented(self, code):
        assert f"`{code.value}`" in README

    def test_two_commands_section_shows_run_then_test(self):
        section = README.split("## Two commands")[1].split("\n## ")[0]
        blocks = re.findall(r"```\n(.*?)```", section, flags=re.DOTALL)

        assert [block.strip() for block in blocks] == ["make run", "make test"]


class TestReadmePythonClient:
    @pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
    def test_python_client_snippet_runs_against_a_live_server(self, make_settings, capsys):
        """The README's Python snippet, run as written against a live API (its URL swapped in)."""
        section = README.split("### The Python client")[1].split("\n## ")[0]
        (snippet,) = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)

        with live_server(create_app(make_settings()), log_level="warning") as base_url:
            code = textwrap.dedent(snippet).replace("http://localhost:8000", base_url)
            exec(compile(code, "README.md", "exec"), {})  # noqa: S102 -- the README's own code

        assert capsys.readouterr().out == "Ada ['Write the Python client']\n404 not_found\n"

    def test_browser_client_section_has_only_the_snippets_its_tests_run(self):
        """Each block is run by backend/tests/browser/test_fresh_app.py: `sh` installs the fresh
        app, `tsx` is its page, `ts` is type-checked there and run in Chromium."""
        section = README.split("## The browser client")[1].split("\n## ")[0]
        section = section.split("### The Python client")[0]  # its snippet has a test of its own

        languages = re.findall(r"^```(\w*)\n.*?^```$", section, flags=re.MULTILINE | re.DOTALL)

        assert languages == ["sh", "tsx", "ts"]


class TestCitedDocs:
    """A comment that cites a document cites one in this repository, and that document exists."""

    _SOURCES = ("backend/app", "clients/js/src", "frontend/src")

    def _cited(self) -> list[tuple[str, str]]:
        found = []
        for top in self._SOURCES:
            for path in sorted((PROJECT_ROOT / top).rglob("*")):
                if path.suffix in {".py", ".ts", ".tsx"}:
                    text = path.read_text()
                    found += [(str(path), m) for m in re.findall(r"\S+\.md\b", text)]
        return found

    def test_no_comment_cites_a_document_outside_the_repository(self):
        outside = [(path, doc) for path, doc in self._cited() if doc.strip("`(").startswith("..")]
        outside += [
            (path, doc)
            for path, doc in self._cited()
            if doc.strip("`(") in {"DESIGN.md", "GOTRUE.md", "STYLE.md"}
        ]
        assert outside == []

    def test_every_cited_document_exists(self):
        """Relative to the repository, or to the package the citing module is in."""
        cited = [(Path(path), doc.strip("`(")) for path, doc in self._cited()]
        assert cited, "the scan found no citation at all"
        app = PROJECT_ROOT / "backend" / "app"
        missing = [
            doc
            for path, doc in cited
            if not any((base / doc).is_file() for base in (PROJECT_ROOT, app, path.parent))
        ]
        assert missing == []

    def test_every_cited_section_exists(self):
        """`docs/x.md §N` names a heading `## N.` of that document."""
        cited = set()
        for top in self._SOURCES:
            for path in (PROJECT_ROOT / top).rglob("*"):
                if path.suffix in {".py", ".ts", ".tsx"}:
                    cited |= set(re.findall(r"(docs/[\w-]+\.md)`? §(\d+)", path.read_text()))
        assert cited, "the scan found no cited section"
        missing = [
            (doc, number)
            for doc, number in sorted(cited)
            if not re.search(rf"^## {number}\. ", (PROJECT_ROOT / doc).read_text(), re.MULTILINE)
        ]
        assert missing == []
