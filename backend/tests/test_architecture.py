"""The layers of docs/architecture.md, checked by import-linter's contracts in pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from backend.app.core.settings import PROJECT_ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 -- fixed arguments
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )


def copy_of_the_app(tmp_path: Path) -> Path:
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for package in ("backend/app", "backend/tests", "bench"):
        shutil.copytree(
            PROJECT_ROOT / package,
            tmp_path / package,
            ignore=shutil.ignore_patterns("__pycache__", "node_modules", ".peers-venv", "results"),
        )
    (tmp_path / "backend" / "__init__.py").write_text("")
    return tmp_path


class TestLayers:
    def test_layers_the_code_has_point_one_way(self):
        """Every contract is kept by the code as it is."""
        result = lint_imports(PROJECT_ROOT)

        assert result.returncode == 0, result.stdout + result.stderr
        assert "0 broken" in result.stdout

    def test_layers_an_upward_import_breaks_the_contract(self, tmp_path):
        """The check can fail: the data layer importing the API layer is caught."""
        root = copy_of_the_app(tmp_path)
        engine = root / "backend" / "app" / "db" / "engine.py"
        engine.write_text(engine.read_text() + "\nimport backend.app.api.auth  # noqa\n")

        result = lint_imports(root)

        assert result.returncode == 1
        assert "Layers point one way BROKEN" in result.stdout
        assert "backend.app.db.engine -> backend.app.api.auth" in result.stdout

    def test_layers_fastapi_in_the_error_tree_breaks_the_contract(self, tmp_path):
        root = copy_of_the_app(tmp_path)
        errors = root / "backend" / "app" / "core" / "errors.py"
        errors.write_text(errors.read_text() + "\nimport fastapi  # noqa\n")

        result = lint_imports(root)

        assert result.returncode == 1
        assert "The domain error tree knows no web framework BROKEN" in result.stdout
