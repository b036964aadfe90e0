"""The outbox's statements: enqueue in the caller's transaction; claim, finish, retry, expire.

A message is `pending` until `sent`, `expired` or `failed`. A claim is one conditional UPDATE
of one due row (`next_attempt_at <= now`) that moves `next_attempt_at` forward by the lease and
stamps a new `claim_id`; only the holder of that `claim_id` can finish the attempt. So two
senders never hold one row at once (PostgreSQL: the row is picked `FOR UPDATE SKIP LOCKED`, so
they take different rows instead of queueing on one; SQLite: writes are serial), and a row
whose sender died becomes due again when its lease runs out.

A row may also start `requested`: a mail asked for whose recipient may not exist (a password
reset, a resent confirmation). The request path stores only what was asked (`enqueue_request`:
a `MailRequest`, no secret, as JSON in `body_text`), the same row for a known and an unknown
address, so the answer takes the same time for both. The sender resolves it (`resolve_next`)
in one transaction: the caller's `MailResolver` issues the token and renders the mail, which
becomes this row's body (`pending`), or there is no such account and the row is deleted. A
sender that dies half-way rolls the whole resolution back; the request stays due (a resolver
that raises is rolled back too, and its request tried again a minute later).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.app.db.tables import mail_outbox, utcnow
from backend.app.mail.message import MailMessage

__all__ = [
    "ClaimedMail",
    "MailRequest",
    "MailResolver",
    "MailState",
    "RequestTaken",
    "Resolution",
    "Resolved",
    "claim_next",
    "enqueue_mail",
    "enqueue_request",
    "finish_expired",
    "finish_failed",
    "finish_sent",
    "next_due_at",
    "resolve_next",
    "schedule_retry",
]


class MailState:
    REQUESTED = "requested"  # asked for, not yet resolved into a mail (`resolve_next`)
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


@dataclass(frozen=True, slots=True)
class MailRequest:
    """A mail asked for and not yet rendered: its `kind` (the resolver's), the address as
    typed, and what the resolver needs besides (GoTrue's link base, say). Never a secret: the
    token is drawn when the request is resolved."""

    kind: str
    email: str
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a request became: `message`, worth sending until `not_after` (its token's expiry)."""

    message: MailMessage
    not_after: datetime


# Run in the sender's write transaction: issue the token (in that transaction) and render the
# mail, or None when there is nothing to send (no such account). It may enqueue more mails.
MailResolver = Callable[[Connection, MailRequest], Resolved | None]


class RequestTaken(Exception):
    """Another sender resolved the request first: this resolution is rolled back."""


def enqueue_request(conn: Connection, request: MailRequest, *, not_after: datetime) -> int:
    """Store `request` for the sender to resolve, in the caller's transaction: one INSERT,
    whatever the request, so an address with an account and one without cost the same.

    Args:
        not_after: until when the request is worth resolving; then it is deleted unresolved.

    Returns:
        the row's id (the mail's, once resolved).
    """
    now = utcnow()
    result = conn.execute(
        mail_outbox.insert().returning(mail_outbox.c.id),
        {
            "recipient": request.email,
            "subject": "",
            "body_text": json.dumps(
                {"kind": request.kind, "email": request.email, "params": request.params}
            ),
            "body_html": None,
            "state": MailState.REQUESTED,
            "attempts": 0,
            "created_at": now,
            "not_after": not_after,
            "next_attempt_at": now,
        },
    )
    return int(result.scalar_one())


@dataclass(frozen=True, slots=True)
class Resolution:
    """The outcome of `resolve_next` for row `id`: `mailed` (now a pending mail) or not;
    `error`, the class of what the resolver raised (the request is retried later)."""

    id: int
    mailed: bool
    error: str | None = None


def resolve_next(
    conn: Connection,
    *,
    resolve: MailResolver,
    now: datetime | None = None,
    retry_after: timedelta = timedelta(seconds=60),
) -> Resolution | None:
    """Resolve the earliest due request with `resolve`, in this transaction; None when none is
    due. A request past its `not_after`, or that `resolve` finds nothing to send for, is
    deleted: no row is left of an address without an account. A `resolve` that raises (a bug)
    has its writes undone and the request tried again `retry_after` later, so one bad request
    never holds up the rest of the outbox.

    Raises:
        RequestTaken: another sender resolved it meanwhile (the caller's transaction must roll
            back what `resolve` wrote).
    """
    now = now or utcnow()
    row = conn.execute(
        sa.select(mail_outbox.c.id, mail_outbox.c.body_text, mail_outbox.c.not_after)
        .where(mail_outbox.c.state == MailState.REQUESTED, mail_outbox.c.next_attempt_at <= now)
        .order_by(mail_outbox.c.next_attempt_at, mail_outbox.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)  # PostgreSQL only; SQLite's writes are serial
    ).first()
    if row is None:
        return None
    this = (mail_outbox.c.id == row.id) & (mail_outbox.c.state == MailState.REQUESTED)
    resolved: Resolved | None = None
    if row.not_after > now:
        asked = json.loads(row.body_text)
        request = MailRequest(kind=asked["kind"], email=asked["email"], params=asked["params"])
        try:
            with conn.begin_nested():  # what `resolve` wrote goes if it raises
                resolved = resolve(conn, request)
        except Exception as exc:  # any bug: postpone this request, not the whole outbox
            error = type(exc).__name__[:100]
            conn.execute(
                mail_outbox.update()
                .where(this)
                .values(
                    attempts=mail_outbox.c.attempts + 1,
                    next_attempt_at=now + retry_after,
                    last_error=error,
                )
            )
            return Resolution(id=row.id, mailed=False, error=error)
    if resolved is None:
        result = conn.execute(mail_outbox.delete().where(this))
    else:
        message = resolved.message
        result = conn.execute(
            mail_outbox.update()
            .where(this)
            .values(
                recipient=message.to,
                subject=message.subject,
                body_text=message.text,
                body_html=message.html,
                state=MailState.PENDING,
                not_after=resolved.not_after,
                next_attempt_at=now,
            )
        )
    if result.rowcount != 1:
        raise RequestTaken()
    return Resolution(id=row.id, mailed=resolved is not None)


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


def next_due_at(conn: Connection, *, with_requests: bool = False) -> datetime | None:
    """When the earliest pending message (`with_requests`: or request) is due, or None: one
    probe of the state index per state."""

    def earliest(state: str) -> sa.ScalarSelect[datetime | None]:
        return (
            sa.select(sa.func.min(mail_outbox.c.next_attempt_at))
            .where(mail_outbox.c.state == state)
            .scalar_subquery()
        )

    states = [MailState.PENDING, MailState.REQUESTED] if with_requests else [MailState.PENDING]
    row = conn.execute(sa.select(*(earliest(state) for state in states))).one()
    return min((value for value in row if value is not None), default=None)


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
