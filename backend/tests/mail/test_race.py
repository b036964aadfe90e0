"""Two instances' senders over one database race for the same outbox: each mail goes out once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from email.message import EmailMessage
from functools import partial

from backend.app.db.engine import Database
from backend.app.mail import MailBackend, MailState
from backend.app.mail.outbox import claim_next
from backend.tests.mail.outbox_helpers import (
    enqueue,
    message,
    outbox_rows,
    sender_for,
    subjects_received,
)

MESSAGES = 50


class _Counted:
    """A real backend that also counts what this sender handed to it."""

    def __init__(self, backend: MailBackend):
        self.backend = backend
        self.sent = 0

    async def send_messages(self, messages: Sequence[EmailMessage]) -> int:
        sent = await self.backend.send_messages(messages)
        self.sent += sent
        return sent


class TestTwoInstances:
    async def test_two_senders_over_one_database_deliver_each_message_exactly_once(
        self, database_url, outbox_database, smtp_server
    ):
        """Two instances (each its own engines and connections, as two processes have) race over
        50 due messages: the SMTP server receives each exactly once, and both took part."""
        other = Database(database_url)
        senders = [
            sender_for(database, smtp_server, poll_interval_seconds=0.01)
            for database in (outbox_database, other)
        ]
        counted = []
        for sender in senders:
            sender.backend = _Counted(sender.backend)
            counted.append(sender.backend)
        await enqueue(outbox_database, [message(n) for n in range(MESSAGES)])
        try:
            for sender in senders:
                sender.start()
            await smtp_server.wait_for(MESSAGES, within=30)
            await asyncio.sleep(0.5)  # time for any duplicate to arrive
        finally:
            for sender in senders:
                await sender.stop()
            await other.dispose()

        assert subjects_received(smtp_server.received) == {f"Mail {n}": 1 for n in range(MESSAGES)}
        assert sum(c.sent for c in counted) == MESSAGES
        assert all(c.sent > 0 for c in counted), [c.sent for c in counted]
        rows = await outbox_rows(outbox_database)
        assert {(row.state, row.attempts) for row in rows} == {(MailState.SENT, 1)}


class TestConcurrentClaims:
    async def test_claim_next_concurrent_claims_never_share_a_message(
        self, database_url, outbox_database
    ):
        """20 claims at the same instant from two instances' pools: no message is claimed
        twice (PostgreSQL: a claim skips the rows others have locked; SQLite: one writer)."""
        other = Database(database_url)
        await enqueue(outbox_database, [message(n) for n in range(20)])
        claim = partial(claim_next, lease=timedelta(minutes=1))
        try:
            claims = await asyncio.gather(
                *(database.write(claim) for database in [outbox_database, other] * 10)
            )
        finally:
            await other.dispose()

        claimed = Counter(c.id for c in claims if c is not None)
        assert claimed
        assert set(claimed.values()) == {1}
