"""Fixtures of the mail tests: real SMTP servers on loopback, a migrated outbox database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from backend.app.db.engine import Database
from backend.app.db.migrate import upgrade_to_head
from backend.tests.mail.smtp_server import SmtpServer, TestCertificates


@pytest.fixture(autouse=True)
async def _closed_connections_finish_closing():
    """A refused connection is closed by aiosmtplib at once, but its socket is released on a
    later turn of the loop; let that turn come before this test's loop ends (else the socket is
    collected in a later test as an "unclosed transport" ResourceWarning, an error here)."""
    yield
    await asyncio.sleep(0.05)


@pytest.fixture(scope="session")
def certificates() -> TestCertificates:
    return TestCertificates()


@pytest.fixture
def trusted_ca(certificates, tmp_path, monkeypatch) -> None:
    """The test CA is the system's trust store for this test, through `SSL_CERT_FILE`."""
    path = tmp_path / "test-ca.pem"
    certificates.ca.cert_pem.write_to_path(str(path))
    monkeypatch.setenv("SSL_CERT_FILE", str(path))


@pytest.fixture
def make_smtp_server(certificates) -> Iterator[Callable[..., SmtpServer]]:
    """Factory: `make_smtp_server(starttls=…, implicit_tls=…, login=…, started=True)`."""
    servers: list[SmtpServer] = []

    def make(*, started: bool = True, **options: Any) -> SmtpServer:
        server = SmtpServer(certificates=certificates, **options)
        servers.append(server)
        if started:
            server.start()
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def smtp_server(make_smtp_server) -> SmtpServer:
    """A plain SMTP server (no TLS), started."""
    server: SmtpServer = make_smtp_server()
    return server


@pytest.fixture
async def outbox_database(database_url: str) -> AsyncIterator[Database]:
    """The app's database at head, with an empty outbox (PostgreSQL's is shared by the tests)."""
    await upgrade_to_head(database_url)
    database = Database(database_url)
    await database.write(lambda conn: conn.execute(sa.text("DELETE FROM mail_outbox")))
    yield database
    await database.dispose()
