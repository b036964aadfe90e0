"""Where mail goes, chosen by settings as Django's email backends are: SMTP, or `.eml` files.

Both have one method, `send_messages(messages) -> int`, which sends them all or raises: the
outbox's sender decides what a failure means (retry later, or give up at the message's expiry).
"""

from __future__ import annotations

import os
import ssl
import tempfile
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

import aiosmtplib
import anyio.to_thread

from backend.app.core.settings import Settings, SmtpTls

__all__ = ["FileBackend", "MailBackend", "SmtpBackend", "build_backend"]


class MailBackend(Protocol):
    """Sends rendered messages (`MailMessage.to_email`)."""

    async def send_messages(self, messages: Sequence[EmailMessage]) -> int:
        """Send every message, in order; the number sent.

        Raises:
            Exception: any failure (connection, TLS, refusal, timeout); nothing is known to
                have been sent of the message that failed.
        """
        ...


class SmtpBackend:
    """SMTP through aiosmtplib, one connection per call.

    Args:
        tls: `starttls` upgrades the connection before anything else is said and refuses a
            server that does not offer STARTTLS (no fallback to plain text, which an attacker
            on the path could force by deleting the offer); `tls` is TLS from the first byte.
        tls_context: by default the system's trust store, which honours `SSL_CERT_FILE` and
            `SSL_CERT_DIR`, with host-name checks.
        timeout_seconds: for each step (connect, each command, the data).
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        tls: SmtpTls,
        username: str | None = None,
        password: str | None = None,
        timeout_seconds: float = 10.0,
        tls_context: ssl.SSLContext | None = None,
    ):
        self.host = host
        self.port = port
        self.tls = tls
        self._username = username
        self._password = password
        self._timeout = timeout_seconds
        self._tls_context = tls_context

    def _client(self) -> aiosmtplib.SMTP:
        context = None
        if self.tls is not SmtpTls.NONE:
            # Made per connection: a fresh default context reads SSL_CERT_FILE as it is now.
            context = self._tls_context or ssl.create_default_context()
        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            use_tls=self.tls is SmtpTls.TLS,
            # True: required (refused if not offered); False: never (aiosmtplib's default,
            # None, would upgrade only when offered, i.e. fall back to plain text silently).
            start_tls=self.tls is SmtpTls.STARTTLS,
            tls_context=context,
            username=self._username,
            password=self._password,
            timeout=self._timeout,
        )

    async def verify(self) -> None:
        """Connect, upgrade and log in as a delivery would, then quit, sending nothing (the
        doctor's check).

        Raises:
            Exception: what a delivery would meet.
        """
        async with self._client() as client:
            await client.noop()

    async def send_messages(self, messages: Sequence[EmailMessage]) -> int:
        if not messages:
            return 0
        client = self._client()
        # Connects, upgrades (STARTTLS) and logs in (when a username is set) before any message.
        async with client:
            for message in messages:
                await client.send_message(message)
        return len(messages)


class FileBackend:
    """Each message as an `.eml` file in `directory` (`DATA_DIR/outbox/`): development's mail,
    opened with any mail client, or read as text to follow its link."""

    def __init__(self, directory: Path):
        self.directory = directory

    async def send_messages(self, messages: Sequence[EmailMessage]) -> int:
        for message in messages:
            await anyio.to_thread.run_sync(self._write, message)
        return len(messages)

    def _write(self, message: EmailMessage) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.directory / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        # Written beside and renamed: a reader never sees half a message.
        fd, temporary = tempfile.mkstemp(dir=self.directory, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as stream:
                # LF line ends, as every text file here (SMTP's CRLF is for the wire).
                stream.write(message.as_bytes(policy=message.policy.clone(linesep="\n")))
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path


def build_backend(settings: Settings) -> MailBackend:
    """SMTP when `SMTP_HOST` is set, else `.eml` files under `DATA_DIR/outbox/`."""
    if not settings.smtp_host:
        return FileBackend(settings.data_dir / "outbox")
    return SmtpBackend(
        host=settings.smtp_host,
        port=settings.smtp_port_or_default,
        tls=settings.smtp_tls,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        timeout_seconds=settings.smtp_timeout_seconds,
    )
