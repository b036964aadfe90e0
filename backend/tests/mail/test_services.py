"""The mail of a whole app instance: `Services` start a sender and stop it; a restart delivers
what the last instance left; nothing is lost or sent twice; nothing secret is logged."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from functools import partial

import httpx
import sqlalchemy as sa

from backend.app.db.tables import utcnow
from backend.app.mail import Mailer, MailMessage
from backend.app.main import create_app
from backend.app.services import Services, start_services
from backend.tests.mail.outbox_helpers import outbox_rows, subjects_received
from backend.tests.mail.smtp_server import PASSWORD, USERNAME

TOKEN = "reset-token-value-Zq7Wc1xK9pL3mN5bV8"
RECIPIENT = "ada.lovelace@example.com"


def _smtp(server, **overrides):
    return {"smtp_host": "127.0.0.1", "smtp_port": server.port, "smtp_tls": "none"} | overrides


def _enqueue(mailer: Mailer, mail: MailMessage, conn: sa.Connection) -> int:
    return mailer.enqueue(conn, mail, not_after=utcnow() + timedelta(hours=1))


async def _request_resets(services: Services, numbers: range) -> None:
    """What a route will do: one transaction per request, the token's mail enqueued in it."""
    mailer = services.mailer
    for n in numbers:
        mail = mailer.password_reset(
            to=f"user{n}@example.com", token=f"{TOKEN}-{n}", valid_for=timedelta(hours=1)
        )
        await services.database.write(partial(_enqueue, mailer, mail))


class TestServices:
    async def test_app_without_smtp_host_writes_eml_files_under_data_dir(
        self, make_settings, outbox_database, tmp_path
    ):
        """`make run`'s default: the app's sender writes each mail under DATA_DIR/outbox."""
        settings = make_settings()
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            services: Services = app.state.services
            await _request_resets(services, range(1))
            for _ in range(100):
                if list((settings.data_dir / "outbox").glob("*.eml")):
                    break
                await asyncio.sleep(0.02)

        (eml,) = (settings.data_dir / "outbox").glob("*.eml")
        text = eml.read_text()
        assert "To: user0@example.com" in text
        assert f"/#reset-password?token={TOKEN}-0" in text

    async def test_restart_delivers_what_the_stopped_instance_left(
        self, make_settings, outbox_database, make_smtp_server
    ):
        """Mail enqueued while SMTP was down survives the process: the next start sends it."""
        server = make_smtp_server(started=False)
        settings = make_settings(**_smtp(server))
        first = await start_services(settings)
        await _request_resets(first, range(3))
        await asyncio.sleep(0.2)  # the first attempts fail
        await first.close()

        server.start()
        second = await start_services(settings)
        try:
            await server.wait_for(3)
            await asyncio.sleep(0.3)
        finally:
            await second.close()

        assert subjects_received(server.received) == {"Reset your My Ideas password": 3}
        assert sorted(r.rcpt_tos[0] for r in server.received) == [
            f"user{n}@example.com" for n in range(3)
        ]

    async def test_no_token_link_body_recipient_or_password_in_any_log_line(
        self, make_settings, outbox_database, make_smtp_server, trusted_ca, caplog
    ):
        """Log lines name the message by id, attempt and error class, nothing else."""
        caplog.set_level(logging.DEBUG)
        server = make_smtp_server(starttls=True, login=True, started=False)
        settings = make_settings(
            **_smtp(server, smtp_tls="starttls", smtp_username=USERNAME, smtp_password=PASSWORD)
        )
        services = await start_services(settings)
        try:
            mail = services.mailer.password_reset(
                to=RECIPIENT, token=TOKEN, valid_for=timedelta(hours=1), display_name="Ada"
            )
            mail_id = await services.database.write(
                lambda conn: services.mailer.enqueue(conn, mail, not_after=utcnow() + timedelta(1))
            )
            await asyncio.sleep(0.3)  # the first attempt fails: SMTP is down
            server.start()
            await server.wait_for(1, within=5)
        finally:
            await services.close()

        formatter = logging.Formatter("%(name)s %(message)s")
        ours = [formatter.format(r) for r in caplog.records if not r.name.startswith("mail.log")]
        text = "\n".join(ours)
        assert len(server.received) == 1
        assert (
            f"mail {mail_id} not delivered (attempt 1, SMTPConnectError); next attempt in 1 s"
            in text
        )
        assert f"mail {mail_id} sent (attempt 2)" in text
        for secret in (TOKEN, RECIPIENT, PASSWORD, "reset-password", "choose a new password"):
            assert secret not in text

    async def test_outage_and_restart_lose_nothing_and_send_nothing_twice(
        self, make_settings, outbox_database, make_smtp_server, capsys
    ):
        """The figure of the closing note: mails requested across an SMTP outage and a restart
        against mails the SMTP server received (by recipient)."""
        server = make_smtp_server(started=False)
        settings = make_settings(**_smtp(server))
        first = await start_services(settings)
        await _request_resets(first, range(20))  # SMTP down
        await asyncio.sleep(0.3)
        await first.close()  # the restart, with 20 pending
        second = await start_services(settings)
        try:
            await _request_resets(second, range(20, 40))  # still down
            server.start()
            await _request_resets(second, range(40, 50))  # up
            await server.wait_for(50, within=20)
            await asyncio.sleep(1.0)  # time for any duplicate to arrive
            rows = await outbox_rows(second.database)
        finally:
            await second.close()

        received = [r.rcpt_tos[0] for r in server.received]
        requested = {f"user{n}@example.com" for n in range(50)}
        lost = len(requested - set(received))
        duplicated = len(received) - len(set(received))
        with capsys.disabled():
            backend = settings.database_url.split(":")[0]
            print(
                f"\nmail under an SMTP outage and a restart ({backend}):"
                f" requested={len(requested)} delivered={len(set(received))} lost={lost}"
                f" duplicated={duplicated}"
            )
        assert (lost, duplicated) == (0, 0)
        assert {row.state for row in rows} == {"sent"}


class TestHttpClientUnaffected:
    async def test_health_answers_while_smtp_is_down(self, make_app, make_smtp_server):
        """A sender that cannot reach SMTP keeps to itself: the app answers as before."""
        server = make_smtp_server(started=False)
        app = await make_app(**_smtp(server))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.get("/health")

        assert response.status_code == 200
