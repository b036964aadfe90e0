"""Helpers of the outbox tests: enqueue in a transaction, read the outbox, start a sender."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from backend.app.core.settings import SmtpTls
from backend.app.db.engine import Database
from backend.app.db.tables import mail_outbox, utcnow
from backend.app.mail import MailMessage, MailSender, SmtpBackend, enqueue_mail
from backend.tests.mail.smtp_server import Received, SmtpServer

__all__ = ["FAST", "enqueue", "outbox_rows", "sender_for", "subjects_received"]

MAIL_FROM = "My Ideas <no-reply@example.com>"
# Test timings: poll often, back off from 50 ms, never more than 200 ms apart.
FAST: dict[str, float] = {
    "poll_interval_seconds": 0.05,
    "backoff_base_seconds": 0.05,
    "backoff_cap_seconds": 0.2,
}


def message(n: int, *, to: str = "ada@example.com", body: str = "body") -> MailMessage:
    return MailMessage(to=to, subject=f"Mail {n}", text=f"{body} {n}", html=f"<p>{body} {n}</p>")


async def enqueue(
    database: Database, messages: list[MailMessage], *, valid_for: timedelta = timedelta(hours=1)
) -> list[int]:
    """Enqueue `messages` in one transaction; their ids."""
    not_after: datetime = utcnow() + valid_for
    return await database.write(
        lambda conn: [enqueue_mail(conn, m, not_after=not_after) for m in messages]
    )


async def outbox_rows(database: Database) -> list[Any]:
    return await database.read(
        lambda conn: list(conn.execute(sa.select(mail_outbox).order_by(mail_outbox.c.id)).all())
    )


def sender_for(database: Database, server: SmtpServer, **options: Any) -> MailSender:
    """A sender through `server` (plain SMTP), with the fast test timings unless overridden."""
    backend = SmtpBackend(host="127.0.0.1", port=server.port, tls=SmtpTls.NONE, timeout_seconds=2)
    return MailSender(database, backend, mail_from=MAIL_FROM, **(FAST | options))


def subjects_received(received: list[Received]) -> Counter[str]:
    return Counter(str(r.message["Subject"]) for r in received)
