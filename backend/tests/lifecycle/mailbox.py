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


def recipient_of(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("To: "):
            return line.removeprefix("To: ").strip()
    raise AssertionError("a mail without To:")


async def mails_to(
    outbox: Path, recipient: str, count: int = 1, *, seconds: float = 5.0
) -> list[str]:
    """The texts of the mails to `recipient`, oldest first, once there are `count` of them (a
    row another test left in a shared PostgreSQL outbox may be delivered here too)."""
    for _ in range(int(seconds / 0.02)):
        found = outbox.glob("*.eml")  # noqa: ASYNC240
        files = sorted(found, key=lambda path: path.stat().st_mtime_ns)
        texts = [path.read_text() for path in files]
        mine = [text for text in texts if recipient_of(text) == recipient]
        if len(mine) >= count:
            return mine
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {count} mails to {recipient} in {outbox}")


def count_to(outbox: Path, recipient: str) -> int:
    return sum(1 for path in outbox.glob("*.eml") if recipient_of(path.read_text()) == recipient)
