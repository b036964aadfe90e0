"""The outbox's statements: enqueue in the caller's transaction; claim, finish, retry, expire.

A message is `pending` until `sent`, `expired` or `failed`. A claim is one conditional UPDATE
of one due row (`next_attempt_at <= now`) that moves `next_attempt_at` forward by the lease and
stamps a new `claim_id`; only the holder of that `claim_id` can finish the attempt. So two
senders never hold one row at once (PostgreSQL: the row is picked `FOR UPDATE SKIP LOCKED`, so
they take different rows instead of queueing on one; SQLite: writes are serial), and a row
whose sender died becomes due again when its lease runs out.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.app.db.tables import mail_outbox, utcnow
from backend.app.mail.message import MailMessage

__all__ = [
    "ClaimedMail",
    "MailState",
    "claim_next",
    "enqueue_mail",
    "finish_expired",
    "finish_failed",
    "finish_sent",
    "next_due_at",
    "schedule_retry",
]


class MailState:
    PENDING = "pending"
    SENT = "sent"
    EXPIRED = "expired"  # not delivered before `not_after`
    FAILED = "failed"  # refused for good (the server refused every recipient)


@dataclass(frozen=True, slots=True)
class ClaimedMail:
    """A message one sender holds until `lease_until`: the attempt only it may finish."""

    id: int
    claim_id: str
    attempt: int  # 1 for the first attempt
    not_after: datetime
    message: MailMessage


def enqueue_mail(conn: Connection, message: MailMessage, *, not_after: datetime) -> int:
    """Store `message` for sending, in the caller's transaction: it goes out only if that
    transaction commits, and it is not lost if the process stops right after.

    Args:
        not_after: when the mail stops being worth sending (its token's expiry); it is
            retried until then, then marked expired and its body deleted.

    Returns:
        the message's id.
    """
    now = utcnow()
    result = conn.execute(
        mail_outbox.insert().returning(mail_outbox.c.id),
        {
            "recipient": message.to,
            "subject": message.subject,
            "body_text": message.text,
            "body_html": message.html,
            "state": MailState.PENDING,
            "attempts": 0,
            "created_at": now,
            "not_after": not_after,
            "next_attempt_at": now,
        },
    )
    return int(result.scalar_one())


def next_due_at(conn: Connection) -> datetime | None:
    """When the earliest pending message is due (one probe of the state index), or None."""
    return conn.execute(
        sa.select(sa.func.min(mail_outbox.c.next_attempt_at)).where(
            mail_outbox.c.state == MailState.PENDING
        )
    ).scalar_one_or_none()


def claim_next(
    conn: Connection, *, lease: timedelta, now: datetime | None = None
) -> ClaimedMail | None:
    """Claim the earliest due message for `lease`, or None when nothing is due."""
    now = now or utcnow()
    candidate = mail_outbox.alias("candidate")  # not correlated with the UPDATE's own table
    pick = (
        sa.select(candidate.c.id)
        .where(candidate.c.state == MailState.PENDING, candidate.c.next_attempt_at <= now)
        .order_by(candidate.c.next_attempt_at, candidate.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)  # PostgreSQL only; SQLite's writes are serial
        .scalar_subquery()
    )
    due = (mail_outbox.c.state == MailState.PENDING) & (mail_outbox.c.next_attempt_at <= now)
    claim_id = str(uuid.uuid4())
    row = conn.execute(
        mail_outbox.update()
        .where(mail_outbox.c.id == pick, due)  # `due` again: the row as it is when locked
        .values(
            claim_id=claim_id,
            next_attempt_at=now + lease,
            attempts=mail_outbox.c.attempts + 1,
        )
        .returning(
            mail_outbox.c.id,
            mail_outbox.c.attempts,
            mail_outbox.c.not_after,
            mail_outbox.c.recipient,
            mail_outbox.c.subject,
            mail_outbox.c.body_text,
            mail_outbox.c.body_html,
        )
    ).one_or_none()
    if row is None:
        return None
    return ClaimedMail(
        id=row.id,
        claim_id=claim_id,
        attempt=row.attempts,
        not_after=row.not_after,
        message=MailMessage(
            to=row.recipient, subject=row.subject, text=row.body_text, html=row.body_html
        ),
    )


def _finish(conn: Connection, claim: ClaimedMail, **values: object) -> bool:
    """Apply `values` if `claim` still holds the row; False when its lease was lost."""
    result = conn.execute(
        mail_outbox.update()
        .where(
            mail_outbox.c.id == claim.id,
            mail_outbox.c.claim_id == claim.claim_id,
            mail_outbox.c.state == MailState.PENDING,
        )
        .values(claim_id=None, **values)
    )
    return result.rowcount == 1


def finish_sent(conn: Connection, claim: ClaimedMail) -> bool:
    """Delivered: the bodies (the links, the tokens) are deleted."""
    return _finish(
        conn,
        claim,
        state=MailState.SENT,
        sent_at=utcnow(),
        body_text=None,
        body_html=None,
        last_error=None,
    )


def finish_expired(conn: Connection, claim: ClaimedMail, *, error: str | None = None) -> bool:
    """Not worth sending any more (its token expired): the bodies are deleted."""
    values: dict[str, object] = {"state": MailState.EXPIRED, "body_text": None, "body_html": None}
    if error is not None:
        values["last_error"] = error
    return _finish(conn, claim, **values)


def finish_failed(conn: Connection, claim: ClaimedMail, *, error: str) -> bool:
    """Refused for good: never retried; the bodies are deleted."""
    return _finish(
        conn,
        claim,
        state=MailState.FAILED,
        body_text=None,
        body_html=None,
        last_error=error[:100],
    )


def schedule_retry(conn: Connection, claim: ClaimedMail, *, at: datetime, error: str) -> bool:
    """Not delivered this time: due again `at`, with `error` (a class name) kept."""
    return _finish(conn, claim, next_attempt_at=at, last_error=error[:100])
