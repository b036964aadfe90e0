"""The background sender: claims due messages from the outbox one at a time and delivers them.

One asyncio task per app instance, started and stopped with its services. It looks for due mail
every `poll_interval_seconds` (one indexed read when there is none), and at once when this
process enqueues one (`wake`). A failed delivery is retried after 1, 2, 4 … seconds, at most
`backoff_cap_seconds` apart, until the message's `not_after`; then it is marked expired. Several
instances over one database never send one message twice (see `outbox.claim_next`). With a
resolver (`resolve_requests_with`), it first turns due requests into mails or drops them (see
`outbox.resolve_next`).

Log lines name the message by its outbox id, with the attempt and an exception's class: never
the recipient, a body, a link or a token, and never an exception's message (an SMTP server's
reply may quote the recipient).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import TypeVar

import aiosmtplib
from sqlalchemy.engine import Connection

from backend.app.db.engine import Database, DatabaseUnavailable
from backend.app.db.tables import utcnow
from backend.app.mail.backends import MailBackend
from backend.app.mail.outbox import (
    ClaimedMail,
    MailResolver,
    RequestTaken,
    claim_next,
    finish_expired,
    finish_failed,
    finish_sent,
    next_due_at,
    resolve_next,
    schedule_retry,
)

__all__ = ["MailSender", "retry_delay"]

logger = logging.getLogger("backend.app.mail")

T = TypeVar("T")

# After a wake the enqueuing transaction may not have committed yet (PostgreSQL runs it while
# this task runs): look again this often, this many times, before falling back to the poll.
_RECHECK_SECONDS = 0.05
_RECHECKS = 10


def retry_delay(attempt: int, *, base_seconds: float = 1.0, cap_seconds: float = 60.0) -> float:
    """Seconds to wait after failed attempt number `attempt` (1, 2, …): doubling, capped."""
    return float(min(cap_seconds, base_seconds * 2 ** min(attempt - 1, 32)))


def _refused_for_good(exc: BaseException) -> bool:
    """The server refused every recipient permanently (5xx): a retry would be refused too."""
    return isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and all(
        refusal.code >= 500 for refusal in exc.recipients
    )


class MailSender:
    """Delivers the outbox of `database` through `backend`.

    Args:
        mail_from: `MAIL_FROM`, the From of every message.
        lease_seconds: how long a claim holds a message; a sender that has not finished by then
            (it died) loses it to the next. Longer than a delivery can take: each delivery is cut
            off at half of it.
    """

    def __init__(
        self,
        database: Database,
        backend: MailBackend,
        *,
        mail_from: str,
        poll_interval_seconds: float = 1.0,
        lease_seconds: float = 120.0,
        backoff_base_seconds: float = 1.0,
        backoff_cap_seconds: float = 60.0,
    ):
        self.database = database
        self.backend = backend
        self._mail_from = mail_from
        self._poll = poll_interval_seconds
        self._lease = timedelta(seconds=lease_seconds)
        self._delivery_timeout = lease_seconds / 2
        self._backoff = partial(
            retry_delay, base_seconds=backoff_base_seconds, cap_seconds=backoff_cap_seconds
        )
        self._woken = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._resolver: MailResolver | None = None

    def resolve_requests_with(self, resolver: MailResolver) -> None:
        """Resolve the outbox's requests with `resolver` (the identity provider's), before
        delivering: without one they wait for a sender that has it."""
        self._resolver = resolver

    def start(self) -> None:
        """Start the sending task on the running event loop (again, after `stop`)."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="mail sender")

    def wake(self) -> None:
        """Look for due mail now rather than at the next poll (called on enqueue)."""
        self._woken.set()

    async def stop(self, *, grace_seconds: float = 5.0) -> None:
        """Stop after the delivery in progress (at most `grace_seconds`, then cancel it: its
        claim lapses and another sender, or the next start, delivers it)."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._woken.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), grace_seconds)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        rechecks = 0
        while not self._stopping:
            try:
                handled = await self.deliver_one()
            except DatabaseUnavailable as exc:
                logger.warning("mail sender: database unavailable (%s)", exc)
                handled = False
            except Exception as exc:  # a bug must not stop the mail for good
                logger.error("mail sender: unexpected %s", type(exc).__name__)
                handled = False
            if handled or self._stopping:
                continue
            timeout = _RECHECK_SECONDS if rechecks else self._poll
            rechecks = max(0, rechecks - 1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), timeout)
            if self._woken.is_set():
                self._woken.clear()
                rechecks = _RECHECKS

    async def deliver_one(self) -> bool:
        """Resolve one due request (with a resolver), else claim one due message and deliver
        (or retry, expire) it; False when none is due.

        Raises:
            DatabaseUnavailable: the outbox cannot be read or claimed.
        """
        resolver = self._resolver
        due = await self.database.read(partial(next_due_at, with_requests=resolver is not None))
        if due is None or due > utcnow():
            return False
        if resolver is not None:
            try:
                resolution = await self.database.write(partial(resolve_next, resolve=resolver))
            except RequestTaken:  # another sender's now; nothing of this attempt was written
                return True
            if resolution is not None:
                if resolution.error is not None:
                    logger.error(
                        "mail request %d not resolved (%s); tried again later",
                        resolution.id,
                        resolution.error,
                    )
                else:
                    # Whether it became a mail stays out of the log: it tells a known address.
                    logger.debug("mail request %d resolved", resolution.id)
                return True
        claim = await self.database.write(partial(claim_next, lease=self._lease))
        if claim is None:  # another sender took it
            return False
        if claim.not_after <= utcnow():
            await self._record(partial(finish_expired, claim=claim))
            logger.warning("mail %d expired after %d attempt(s)", claim.id, claim.attempt - 1)
            return True
        try:
            message = claim.message.to_email(mail_from=self._mail_from)
        except ValueError:  # a header with a line break: no attempt can ever send it
            await self._record(partial(finish_failed, claim=claim, error="ValueError"))
            logger.error("mail %d failed: not a valid message (ValueError)", claim.id)
            return True
        try:
            async with asyncio.timeout(self._delivery_timeout):
                await self.backend.send_messages([message])
        except Exception as exc:
            await self._after_failure(claim, type(exc).__name__, for_good=_refused_for_good(exc))
            return True
        if await self._record(partial(finish_sent, claim=claim)):
            logger.info("mail %d sent (attempt %d)", claim.id, claim.attempt)
        else:
            logger.warning("mail %d sent after its claim had lapsed", claim.id)
        return True

    async def _after_failure(self, claim: ClaimedMail, error: str, *, for_good: bool) -> None:
        if for_good:
            await self._record(partial(finish_failed, claim=claim, error=error))
            logger.warning("mail %d refused (attempt %d, %s)", claim.id, claim.attempt, error)
            return
        delay = self._backoff(claim.attempt)
        at = utcnow() + timedelta(seconds=delay)
        if at >= claim.not_after:
            await self._record(partial(finish_expired, claim=claim, error=error))
            logger.warning(
                "mail %d not delivered (attempt %d, %s); expired", claim.id, claim.attempt, error
            )
            return
        await self._record(partial(schedule_retry, claim=claim, at=at, error=error))
        logger.warning(
            "mail %d not delivered (attempt %d, %s); next attempt in %g s",
            claim.id,
            claim.attempt,
            error,
            delay,
        )

    async def _record(self, work: Callable[[Connection], T]) -> T:
        """Write an attempt's outcome, retrying through a database outage for as long as the
        claim lasts: a delivery that is not recorded would be sent again."""
        deadline = asyncio.get_running_loop().time() + self._lease.total_seconds()
        while True:
            try:
                return await self.database.write(work)
            except DatabaseUnavailable:
                if asyncio.get_running_loop().time() + self._poll > deadline:
                    raise
                await asyncio.sleep(self._poll)
