"""The links and codes of the mails that GoTrue's API sends (`/auth/v1/verify?token=…`), read
from the outbox's .eml files or from a real SMTP server's messages."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from backend.tests.mail.smtp_server import SmtpServer

_LINK = re.compile(r"(https?://\S+/auth/v1/verify\?\S+)")
_CODE = re.compile(r"enter this code:\s+(\d{6})")


@dataclass(frozen=True)
class GoTrueMail:
    to: str
    text: str

    @property
    def link(self) -> str:
        (found,) = set(_LINK.findall(self.text))
        return str(found)

    @property
    def link_or_none(self) -> str | None:
        return self.link if _LINK.search(self.text) else None

    @property
    def query(self) -> dict[str, str]:
        parsed = parse_qs(urlsplit(self.link).query)
        return {key: str(values[0]) for key, values in parsed.items()}

    @property
    def token(self) -> str:
        return self.query["token"]

    def for_script(self) -> dict[str, str | None]:
        """What a client script needs of it: the link, its token and the code (None if absent)."""
        link = self.link_or_none
        return {
            "link": link,
            "token": self.token if link else None,
            "code": self.code if _CODE.search(self.text) else None,
        }

    @property
    def code(self) -> str:
        (found,) = set(_CODE.findall(self.text))
        return str(found)


def _plain(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def _parse(raw: str) -> EmailMessage:
    message = email.message_from_string(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _eml_mails(outbox: Path) -> list[GoTrueMail]:
    files = sorted(outbox.glob("*.eml"), key=lambda path: path.stat().st_mtime_ns)
    mails = []
    for path in files:
        message = _parse(path.read_text())
        mails.append(GoTrueMail(to=str(message["To"]), text=_plain(message)))
    return mails


async def outbox_mails(
    outbox: Path, to: str, count: int = 1, *, seconds: float = 5.0
) -> list[GoTrueMail]:
    """The mails to `to` in the .eml outbox, oldest first, once there are `count`."""
    for _ in range(int(seconds / 0.02)):
        mine = [mail for mail in _eml_mails(outbox) if mail.to == to]
        if len(mine) >= count:
            return mine
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {count} mails to {to}")


def count_outbox(outbox: Path, to: str) -> int:
    return sum(1 for mail in _eml_mails(outbox) if mail.to == to)


def smtp_mails(
    server: SmtpServer, to: str, count: int = 1, *, seconds: float = 10.0
) -> list[GoTrueMail]:
    """The mails to `to` that the SMTP server received, once there are `count` (blocking: for
    tests that run the app in a thread)."""
    deadline = time.monotonic() + seconds
    while True:
        mine = [
            GoTrueMail(to=to, text=_plain(received.message))
            for received in server.received
            if received.rcpt_tos == [to]
        ]
        if len(mine) >= count or time.monotonic() > deadline:
            assert len(mine) >= count, f"expected {count} mails to {to}"
            return mine
        time.sleep(0.02)


async def received_mails(
    server: SmtpServer, to: str, count: int = 1, *, seconds: float = 10.0
) -> list[GoTrueMail]:
    """As `smtp_mails`, for async tests."""
    for _ in range(int(seconds / 0.02)):
        mine = [
            GoTrueMail(to=to, text=_plain(received.message))
            for received in server.received
            if received.rcpt_tos == [to]
        ]
        if len(mine) >= count:
            return mine
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {count} mails to {to}")
