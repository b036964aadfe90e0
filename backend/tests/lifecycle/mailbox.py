"""Reading the links out of the mails an app under test delivered (.eml files or SMTP)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import sqlalchemy as sa

from backend.app.db.tables import mail_outbox

_LINK = re.compile(r"#(reset-password|confirm-email)\?token=([A-Za-z0-9_%\-]+)")
# A mail of the GoTrue-compatible API (what the supabase provider's project sends): GoTrue's
# `…/verify?token=<token hash>&type=…`, the value Supabase's templates give as `{{ .TokenHash }}`
# and the supabase provider verifies.
_GOTRUE_LINK = re.compile(r"/verify\?token=([A-Za-z0-9_%\-]+)&(?:amp;)?type=([a-z_]+)")
_ROUTE_OF_TYPE = {
    "recovery": "reset-password",
    "signup": "confirm-email",
    "email_change": "confirm-email",
}


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
    """The token of the mail's `route` link (`reset-password` or `confirm-email`), in this
    app's form or GoTrue's."""
    found = {unquote(token) for kind, token in _LINK.findall(text) if kind == route}
    found |= {
        unquote(token)
        for token, kind in _GOTRUE_LINK.findall(text)
        if _ROUTE_OF_TYPE.get(kind) == route
    }
    (token,) = found
    return token


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


async def requests_resolved(database: Any, *, seconds: float = 5.0) -> None:
    """Wait until the mail sender has resolved every mail request in the outbox (into a mail,
    or into nothing for an address without an account)."""

    def waiting(conn: sa.Connection) -> int:
        count = sa.select(sa.func.count()).select_from(mail_outbox)
        return int(conn.execute(count.where(mail_outbox.c.state == "requested")).scalar_one())

    for _ in range(int(seconds / 0.02)):
        if not await database.read(waiting):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the mail sender left requests unresolved")
