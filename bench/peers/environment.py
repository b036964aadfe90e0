"""The peers' own venv, `bench/.peers-venv`: fastapi-users and AuthX are no dependency of the app.

Installed from PyPI by the benchmark itself, with the web framework pinned to the main venv's
versions (FastAPI, Starlette, pydantic, uvicorn and its loop and parser), so the peers run on the
very framework ours does and only the auth layers differ. fastapi-users' SQLAlchemy adapter
brings its own SQLAlchemy (the version it supports): the results record both.

A second run reuses the venv when it was installed for the same requirements.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

from bench.servers import REPO

__all__ = ["VENV", "ensure_peers", "installed_versions"]

VENV = REPO / "bench" / ".peers-venv"
PEERS = ("fastapi-users[sqlalchemy]", "authx", "aiosqlite", "asyncpg")
# The framework under every server, pinned to what the main venv runs.
FRAMEWORK = ("fastapi", "starlette", "pydantic", "pydantic-core", "uvicorn", "uvloop", "httptools")
_STAMP = VENV / "bench-requirements.txt"


def _requirements() -> list[str]:
    pins = []
    for name in FRAMEWORK:
        extra = "[standard]" if name == "uvicorn" else ""
        pins.append(f"{name}{extra}=={importlib.metadata.version(name)}")
    return [*PEERS, *pins]


def ensure_peers() -> Path:
    """The peers' Python, installing their venv first unless it has these requirements."""
    python = VENV / "bin" / "python"
    wanted = "\n".join(_requirements()) + "\n"
    if python.exists() and _STAMP.exists() and _STAMP.read_text() == wanted:
        return python
    shutil.rmtree(VENV, ignore_errors=True)
    print(f"Installing the peers into {VENV.relative_to(REPO)} …", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *_requirements(),
        ],
        check=True,
    )
    _STAMP.write_text(wanted)
    return python


def installed_versions(python: Path, names: tuple[str, ...]) -> dict[str, str]:
    """`{name: version}` of distributions installed for `python` ("absent" when not)."""
    script = (
        "import importlib.metadata as m, json, sys\n"
        "def v(n):\n"
        "    try: return m.version(n)\n"
        "    except m.PackageNotFoundError: return 'absent'\n"
        "print(json.dumps({n: v(n) for n in sys.argv[1:]}))"
    )
    result = subprocess.run(
        [str(python), "-c", script, *names], capture_output=True, text=True, check=True
    )
    versions: dict[str, str] = json.loads(result.stdout)
    return versions
