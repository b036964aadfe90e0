"""The outbox and its sender, on SQLite and PostgreSQL, against a real SMTP server on loopback."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest

from backend.app.db.engine import Database
from backend.app.db.tables import utcnow
from backend.app.mail import Mailer, MailSender, MailState, retry_delay
from backend.app.mail.outbox import claim_next
from backend.tests.mail.outbox_helpers import (
    enqueue,
    message,
    outbox_rows,
    sender_for,
    subjects_received,
)
from backend.tests.mail.smtp_server import SmtpServer


@pytest.fixture
async def make_sender(outbox_database) -> AsyncIterator[Callable[..., MailSender]]:
    """Factory: `make_sender(server, **options)` -> a started sender over the test's outbox."""
    senders: list[MailSender] = []

    def make(server: SmtpServer, *, database: Database | None = None, **options: Any) -> MailSender:
        sender = sender_for(database or outbox_database, server, **options)
        sender.start()
        senders.append(sender)
        return sender

    yield make
    for sender in senders:
        await sender.stop()


async def _until(predicate: Callable[[], Any], *, within: float = 5.0) -> None:
    for _ in range(int(within / 0.02)):
        if await predicate():
            return
        await asyncio.sleep(0.02)


class TestEnqueue:
    async def test_enqueue_mail_in_a_rolled_back_transaction_stores_nothing(self, outbox_database):
        """The mail commits with the caller's transaction or not at all."""

        def work(conn):
            from backend.app.mail import enqueue_mail

            enqueue_mail(conn, message(1), not_after=utcnow() + timedelta(hours=1))
            raise RuntimeError("the token could not be stored")

        with pytest.raises(RuntimeError):
            await outbox_database.write(work)

        assert await outbox_rows(outbox_database) == []

    async def test_enqueue_mail_stores_a_due_pending_message(self, outbox_database):
        """Stored pending, due now, no attempt yet."""
        (message_id,) = await enqueue(outbox_database, [message(1)])

        (row,) = await outbox_rows(outbox_database)
        assert row.id == message_id
        assert (row.state, row.attempts, row.recipient) == (MailState.PENDING, 0, "ada@example.com")
        assert row.next_attempt_at <= utcnow()


class TestDelivery:
    async def test_sender_woken_by_enqueue_delivers_before_its_poll(
        self, outbox_database, smtp_server, make_sender
    ):
        """An enqueue in this process wakes the sender: sent at once, not at the next poll."""
        sender = make_sender(smtp_server, poll_interval_seconds=30)
        mailer = Mailer(product_name="My Ideas", site_url="http://x", wake_sender=sender.wake)
        await asyncio.sleep(0.1)  # the sender has looked once and now waits for its poll
        started = asyncio.get_running_loop().time()

        await outbox_database.write(
            lambda conn: mailer.enqueue(conn, message(1), not_after=utcnow() + timedelta(hours=1))
        )
        received = await smtp_server.wait_for(1, within=3)

        assert len(received) == 1
        assert asyncio.get_running_loop().time() - started < 1.5

    async def test_delivered_message_is_marked_sent_and_loses_its_body(
        self, outbox_database, smtp_server, make_sender
    ):
        """Once sent, the bodies (which hold the links and tokens) are gone from the database."""
        make_sender(smtp_server)
        await enqueue(outbox_database, [message(1, body="secret-link")])

        await smtp_server.wait_for(1)
        await _until(lambda: _states(outbox_database, MailState.SENT), within=3)

        (row,) = await outbox_rows(outbox_database)
        assert (row.state, row.attempts) == (MailState.SENT, 1)
        assert row.body_text is None
        assert row.body_html is None
        assert row.sent_at is not None
        assert smtp_server.received[0].message.get_body(("plain",)).get_content().strip() == (
            "secret-link 1"
        )

    async def test_smtp_down_at_enqueue_then_up_delivers_each_exactly_once(
        self, outbox_database, make_smtp_server, make_sender
    ):
        """Mail requested while SMTP is down is retried and delivered once it answers."""
        server = make_smtp_server(started=False)
        make_sender(server)
        await enqueue(outbox_database, [message(n) for n in range(5)])
        await _until(lambda: _attempted(outbox_database, times=2), within=5)

        server.start()
        await server.wait_for(5)
        await asyncio.sleep(0.5)  # time for any duplicate to arrive

        assert subjects_received(server.received) == {f"Mail {n}": 1 for n in range(5)}
        rows = await outbox_rows(outbox_database)
        assert all(row.attempts > 1 for row in rows)
        assert {row.state for row in rows} == {MailState.SENT}
        assert {row.last_error for row in rows} == {None}

    async def test_refused_data_is_retried_with_backoff_capped(
        self, outbox_database, smtp_server, make_sender, caplog
    ):
        """A 4xx answer is retried after 50, 100, 200, 200 … ms: doubling, capped."""
        caplog.set_level(logging.WARNING, logger="backend.app.mail")
        smtp_server.handler.refuse_data = "451 4.3.0 Try again later"
        make_sender(smtp_server)
        await enqueue(outbox_database, [message(1)])

        def retries_logged() -> list[float]:
            return [
                float(m.group(1))
                for r in caplog.records
                if (m := re.search(r"next attempt in ([\d.]+) s", r.getMessage()))
            ]

        async def five_retries() -> bool:
            return len(retries_logged()) >= 5

        await _until(five_retries, within=5)
        smtp_server.handler.refuse_data = None
        await smtp_server.wait_for(1)

        delays = retries_logged()
        assert delays[:4] == [0.05, 0.1, 0.2, 0.2]
        assert max(delays) == 0.2
        assert "SMTPDataError" in caplog.records[0].getMessage()
        assert len(smtp_server.received) == 1

    async def test_expired_message_stops_being_retried_and_loses_its_body(
        self, outbox_database, make_smtp_server, make_sender
    ):
        """Past `not_after` (its token's expiry) the mail is expired: no more attempts, no body."""
        server = make_smtp_server(started=False)
        make_sender(server)
        await enqueue(outbox_database, [message(1)], valid_for=timedelta(seconds=0.5))

        await _until(lambda: _states(outbox_database, MailState.EXPIRED), within=3)
        (expired,) = await outbox_rows(outbox_database)
        server.start()
        await asyncio.sleep(0.5)

        (row,) = await outbox_rows(outbox_database)
        assert row.state == MailState.EXPIRED
        assert row.attempts == expired.attempts
        assert (row.body_text, row.body_html) == (None, None)
        assert row.last_error == "SMTPConnectError"
        assert server.received == []

    async def test_recipient_refused_for_good_is_failed_and_not_retried(
        self, outbox_database, smtp_server, make_sender
    ):
        """A 5xx refusal of the recipient would be refused again: failed after one attempt."""
        smtp_server.handler.refuse_rcpt = "550 5.1.1 No such user"
        make_sender(smtp_server)
        await enqueue(outbox_database, [message(1)])

        await _until(lambda: _states(outbox_database, MailState.FAILED), within=3)
        await asyncio.sleep(0.3)

        (row,) = await outbox_rows(outbox_database)
        assert (row.state, row.attempts, row.last_error) == (
            MailState.FAILED,
            1,
            "SMTPRecipientsRefused",
        )
        assert (row.body_text, row.body_html) == (None, None)

    async def test_claim_of_a_dead_sender_is_taken_again_when_its_lease_lapses(
        self, outbox_database, smtp_server, make_sender
    ):
        """A sender that claimed and died holds the mail only until its lease runs out."""
        await enqueue(outbox_database, [message(1)])
        dead = await outbox_database.write(
            lambda conn: claim_next(conn, lease=timedelta(seconds=0.4))
        )
        assert dead is not None
        make_sender(smtp_server)

        await asyncio.sleep(0.2)
        assert smtp_server.received == []  # the lease still holds
        await smtp_server.wait_for(1)
        await asyncio.sleep(0.3)

        assert len(smtp_server.received) == 1
        (row,) = await outbox_rows(outbox_database)
        assert (row.state, row.attempts) == (MailState.SENT, 2)


class TestRetryDelay:
    def test_retry_delay_doubles_from_one_second_and_is_capped_at_a_minute(self):
        """1, 2, 4 … 32, then 60 s whatever the attempt."""
        delays = [retry_delay(attempt) for attempt in range(1, 10)]

        assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]
        assert retry_delay(10_000) == 60


async def _attempted(database: Database, *, times: int) -> bool:
    rows = await outbox_rows(database)
    return bool(rows) and all(row.attempts >= times for row in rows)


async def _states(database: Database, state: str) -> bool:
    rows = await outbox_rows(database)
    return bool(rows) and all(row.state == state for row in rows)
