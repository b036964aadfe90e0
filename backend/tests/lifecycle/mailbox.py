"""Reading the links out of the mails an app under test delivered (.eml files or SMTP)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from urllib.parse import unquote

_LINK = re.compile(r"#(reset-password|confirm-email)\?token=([A-Za-z0-9_%\-]+)")


async def eml_files(outbox: Path, count: int, *, seconds: float = 5.0) -> list[str]:
    """The texts of the first `count` .eml files the app wrote, waiting for the sender."""
    for _ in range(int(seconds / 0.02)):
        # A test's few files in a temporary folder: blocking reads of microseconds.
        found = outbox.glob("*.eml")  # noqa: ASYNC240
        files = sorted(found, key=lambda path: path.stat().st_mtime_ns)
        if len(files) >= count:
            return [path.read_text() for path in files]
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {count} mails in {outbox}")


def token_of(text: str, route: str) -> str:
    (found,) = {unquote(token) for kind, token in _LINK.findall(text) if kind == route}
    return found
