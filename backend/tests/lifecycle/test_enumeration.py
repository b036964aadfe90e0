"""No account enumeration by timing (ASVS 5.0 V6.3.8, docs/account-lifecycle.md): the
routes that mail an address which may have no account (`/auth/password/forgot`,
`/auth/email/resend`, `/auth/v1/recover`, `/auth/v1/resend` `signup`) do the same work on the
request's path for any address, one outbox request; the mail sender resolves it afterwards, into
a mail for a known address and into nothing for an unknown one, without losing it to a restart,
an SMTP outage or a crash half-way."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import partial
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from backend.app.db.tables import identity_account_tokens, identity_users, mail_outbox, utcnow
from backend.app.identity.emails import email_key
from backend.app.mail.outbox import MailState, resolve_next
from backend.app.main import create_app
from backend.tests.gotrue.conftest import GoTrue
from backend.tests.gotrue_server import ANON_KEY, SERVICE_ROLE_KEY
from backend.tests.helpers import PASSWORD, AuthApi, unique_email
from backend.tests.lifecycle.mailbox import requests_resolved, token_of
from backend.tests.mail.smtp_server import SmtpServer

NEW_PASSWORD = "a brand new passphrase 42"

# route name: (path, the body besides the address, the link's SPA route, how it is followed)
ROUTES: dict[str, tuple[str, dict[str, str], str]] = {
    "forgot": ("/auth/password/forgot", {}, "reset-password"),
    "resend": ("/auth/email/resend", {}, "confirm-email"),
    "gotrue_recover": ("/auth/v1/recover", {}, "reset-password"),
    "gotrue_resend": ("/auth/v1/resend", {"type": "signup"}, "confirm-email"),
}

# One app serves both APIs; a sign-up stays unconfirmed, so it is "known" to all four routes.
SETTINGS: dict[str, Any] = {
    "gotrue_api_enabled": True,
    "supabase_anon_key": ANON_KEY,
    "supabase_service_role_key": SERVICE_ROLE_KEY,
    "email_confirmation_required": True,
}


@pytest.fixture
def identity_provider() -> str:
    return "embedded"  # the statements counted are the embedded provider's own


class Caller:
    """One client of both APIs of `app`: /auth with its CSRF token, /auth/v1 with its apikey."""

    def __init__(self, app: Any):
        self.app = app
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        )
        self.auth = AuthApi(self.client)
        self.gotrue = GoTrue(self.client, app)

    @property
    def services(self) -> Any:
        return self.app.state.services

    async def ask(self, route: str, email: str) -> httpx.Response:
        path, body, _ = ROUTES[route]
        if path.startswith("/auth/v1"):
            return await self.gotrue.call(
                "POST", path.removeprefix("/auth/v1"), json=body | {"email": email}
            )
        return await self.auth.post(path, body | {"email": email})

    async def follow(self, route: str, mail_text: str) -> httpx.Response:
        """Use the mail's link as the SPA would: reset the password or confirm the address."""
        spa_route = ROUTES[route][2]
        token = token_of(mail_text, spa_route)
        if spa_route == "reset-password":
            return await self.auth.post(
                "/auth/password/reset", {"token": token, "password": NEW_PASSWORD}
            )
        return await self.auth.post("/auth/email/verify", {"token": token})


@pytest.fixture
async def make_caller(make_app):
    callers: list[Caller] = []

    async def make(**overrides: Any) -> Caller:
        caller = Caller(await make_app(**(SETTINGS | overrides)))
        callers.append(caller)
        return caller

    yield make
    for caller in callers:
        await caller.client.aclose()


@contextmanager
def statements() -> Iterator[list[str]]:
    """The SQL of every statement any engine of this process runs meanwhile."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(statement)

    sa.event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(Engine, "before_cursor_execute", record)


async def _outbox_rows_to(services: Any, recipient: str) -> list[Any]:
    def read(conn: sa.Connection) -> list[Any]:
        chosen = mail_outbox.c.recipient == recipient
        return list(conn.execute(sa.select(mail_outbox).where(chosen)).all())

    return list(await services.database.read(read))


async def _tokens_of(services: Any, email: str) -> int:
    def read(conn: sa.Connection) -> int:
        user = sa.select(identity_users.c.id).where(identity_users.c.email == email_key(email))
        count = sa.select(sa.func.count()).select_from(identity_account_tokens)
        return int(
            conn.execute(count.where(identity_account_tokens.c.user_id.in_(user))).scalar_one()
        )

    return int(await services.database.read(read))


def _smtp(server: SmtpServer) -> dict[str, Any]:
    return {"smtp_host": "127.0.0.1", "smtp_port": server.port, "smtp_tls": "none"}


def _mails_to(server: SmtpServer, recipient: str) -> list[str]:
    texts = []
    for received in server.received:
        if received.rcpt_tos == [recipient]:
            plain = received.message.get_body(("plain",))
            assert plain is not None
            texts.append(plain.get_content())
    return texts


async def _wait_for_mails(server: SmtpServer, recipient: str, count: int) -> list[str]:
    for _ in range(500):
        if len(found := _mails_to(server, recipient)) >= count:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {count} mails to {recipient}")


@pytest.mark.parametrize("route", list(ROUTES))
class TestSameWorkForAnyAddress:
    async def test_the_request_path_runs_the_same_statements_for_a_known_and_an_unknown_address(
        self, make_caller, route
    ):
        """The same SQL, statement for statement, whether the address has an account or not."""
        caller = await make_caller()
        known = unique_email()
        assert (await caller.auth.signup(known)).status_code == 201
        await caller.services.mail_sender.stop()  # its statements are not the request's
        await caller.ask(route, unique_email())  # warm-up: the CSRF token, compiled statements

        with statements() as for_known:
            known_answer = await caller.ask(route, known)
        with statements() as for_unknown:
            unknown_answer = await caller.ask(route, unique_email())

        assert known_answer.status_code in (200, 202)
        assert (unknown_answer.status_code, unknown_answer.content) == (
            known_answer.status_code,
            known_answer.content,
        )
        assert for_known, "the request stores something"
        assert for_known == for_unknown

    async def test_the_sender_mails_a_known_address_and_leaves_nothing_of_an_unknown_one(
        self, make_caller, make_smtp_server, route
    ):
        """Real SMTP: the known address's mail arrives and its link works; the unknown address
        gets no mail, no token and no outbox row once the sender has run."""
        server: SmtpServer = make_smtp_server()
        caller = await make_caller(**_smtp(server))
        known, unknown = unique_email(), unique_email()
        assert (await caller.auth.signup(known)).status_code == 201
        await _wait_for_mails(server, known, 1)  # the sign-up's own confirmation

        assert (await caller.ask(route, known)).status_code in (200, 202)
        assert (await caller.ask(route, unknown)).status_code in (200, 202)
        mails = await _wait_for_mails(server, known, 2)
        await requests_resolved(caller.services.database)
        followed = await caller.follow(route, mails[-1])

        assert followed.status_code == 200, followed.text
        assert _mails_to(server, unknown) == []
        assert await _outbox_rows_to(caller.services, unknown) == []


class TestResendEmailChange:
    async def test_a_pending_change_and_none_run_the_same_statements_then_only_one_is_mailed(
        self, make_caller, make_smtp_server
    ):
        """GoTrue's `/resend` `email_change`: the same SQL for an address with a pending change
        and one without; then a new link reaches the new address, a notice the old one."""
        server: SmtpServer = make_smtp_server()
        caller = await make_caller(email_confirmation_required=False, **_smtp(server))
        user = await caller.auth.signed_in_user()
        new_email = unique_email()
        changed = await caller.client.post(
            "/auth/email",
            json={"newEmail": new_email, "currentPassword": PASSWORD},
            headers=user.auth,
        )
        assert changed.status_code == 202, changed.text
        await _wait_for_mails(server, new_email, 1)
        await _wait_for_mails(server, user.email, 1)
        body = {"type": "email_change"}
        await caller.gotrue.call("POST", "/resend", json=body | {"email": unique_email()})

        await caller.services.mail_sender.stop()
        with statements() as for_pending:
            pending = await caller.gotrue.call("POST", "/resend", json=body | {"email": user.email})
        with statements() as for_none:
            none = await caller.gotrue.call(
                "POST", "/resend", json=body | {"email": unique_email()}
            )
        caller.services.mail_sender.start()
        links = await _wait_for_mails(server, new_email, 2)
        notices = await _wait_for_mails(server, user.email, 2)
        await requests_resolved(caller.services.database)

        assert (pending.status_code, pending.content) == (none.status_code, none.content)
        assert for_pending == for_none
        assert "/auth/v1/verify?token=" in links[-1]
        assert new_email in notices[-1]


class TestDurability:
    async def test_a_request_left_by_a_stopped_instance_is_mailed_through_an_smtp_outage(
        self, make_settings, make_smtp_server
    ):
        """Forgot on an instance that stops before its sender runs (SMTP down); the next
        instance resolves the request, retries through the outage and delivers a working link;
        the unknown address's request leaves nothing."""
        server: SmtpServer = make_smtp_server(started=False)
        settings = make_settings(**SETTINGS, **_smtp(server))
        known, unknown = unique_email(), unique_email()
        first = create_app(settings)
        async with first.router.lifespan_context(first):
            caller = Caller(first)
            await caller.services.database.write(
                lambda conn: conn.execute(mail_outbox.delete())  # PostgreSQL's is shared
            )
            assert (await caller.auth.signup(known)).status_code == 201
            await caller.services.mail_sender.stop()  # it dies before resolving anything
            assert (await caller.ask("forgot", known)).status_code == 202
            assert (await caller.ask("forgot", unknown)).status_code == 202
            await caller.client.aclose()

        second = create_app(settings)
        async with second.router.lifespan_context(second):
            caller = Caller(second)
            await requests_resolved(caller.services.database)
            await asyncio.sleep(0.3)  # the first attempts fail: SMTP is still down
            server.start()
            mails = [
                text for text in await _wait_for_mails(server, known, 2) if "reset-password" in text
            ]
            followed = await caller.follow("forgot", mails[0])
            unknown_rows = await _outbox_rows_to(caller.services, unknown)
            await caller.client.aclose()

        assert followed.status_code == 200, followed.text
        assert unknown_rows == []

    async def test_a_sender_that_dies_while_resolving_leaves_the_request_whole(self, make_caller):
        """A resolution that stops half-way (after the token is written, before the outbox row
        changes) rolls back: no token, the request kept (tried again a minute later); the next
        resolution mails it."""
        caller = await make_caller()
        known = unique_email()
        assert (await caller.auth.signup(known)).status_code == 201
        services = caller.services
        await services.mail_sender.stop()
        await caller.ask("forgot", known)
        provider = services.identity
        tokens_before = await _tokens_of(services, known)

        def dies_half_way(conn: sa.Connection, request: Any) -> Any:
            assert provider.resolve_mail_request(conn, request) is not None
            raise RuntimeError("the sender's process ends here")

        failed = await services.database.write(partial(resolve_next, resolve=dies_half_way))
        rows_after_crash = await _outbox_rows_to(services, known)
        tokens_after_crash = await _tokens_of(services, known)
        resolution = await services.database.write(
            partial(
                resolve_next,
                resolve=provider.resolve_mail_request,
                now=utcnow() + timedelta(minutes=2),  # past the failed attempt's retry delay
            )
        )

        assert failed is not None
        assert failed.error == "RuntimeError"
        assert [row.state for row in rows_after_crash if row.subject == ""] == [MailState.REQUESTED]
        assert tokens_after_crash == tokens_before
        assert resolution is not None
        assert resolution.mailed
        assert await _tokens_of(services, known) == tokens_before + 1


class TestIssuance:
    async def test_the_reset_token_lives_its_ttl_from_when_the_sender_issues_it(self, make_caller):
        """The token is issued when the sender resolves the request, not when it was asked for:
        it expires PASSWORD_RESET_TTL_SECONDS after that, and so does its mail."""
        caller = await make_caller(password_reset_ttl_seconds=600)
        known = unique_email()
        assert (await caller.auth.signup(known)).status_code == 201
        services = caller.services
        await services.mail_sender.stop()
        await caller.ask("forgot", known)
        asked_at = utcnow()
        await asyncio.sleep(0.05)
        services.mail_sender.start()
        await requests_resolved(services.database)

        def reset_tokens(conn: sa.Connection) -> list[Any]:
            chosen = identity_account_tokens.c.purpose == "reset"
            return list(conn.execute(sa.select(identity_account_tokens).where(chosen)).all())

        (token,) = await services.database.read(reset_tokens)
        mails = [row for row in await _outbox_rows_to(services, known) if "password" in row.subject]

        assert token.created_at > asked_at
        assert abs(token.expires_at - token.created_at - timedelta(seconds=600)) < timedelta(
            seconds=1
        )
        assert len(token.token_hash) == 64
        assert [row.not_after for row in mails] == [token.expires_at]


class TestResendSecureEmailChange:
    async def test_a_half_done_change_and_none_run_the_same_statements_then_both_are_mailed(
        self, make_caller, make_smtp_server
    ):
        """GoTrue's secure email change (`GOTRUE_MAILER_SECURE_EMAIL_CHANGE_ENABLED`, on, and
        autoconfirm off): `/resend` `email_change` for an address with a pending two-token
        change, one side already confirmed, runs the request path's statements of an address
        with none; the sender then mails both addresses a new link and code (GoTrue's
        `sendEmailChange` again), the older links are spent and the two new ones are needed."""
        server: SmtpServer = make_smtp_server()
        caller = await make_caller(
            gotrue_mailer_autoconfirm=False,
            gotrue_mailer_secure_email_change_enabled=True,
            **_smtp(server),
        )
        old, new = unique_email(), unique_email()
        created = await caller.gotrue.admin(
            "POST", "/users", json={"email": old, "password": PASSWORD, "email_confirm": True}
        )
        assert created.status_code == 200, created.text
        signed_in = await caller.gotrue.sign_in(old)
        assert signed_in.status_code == 200, signed_in.text
        before = len(_mails_to(server, old))
        changed = await caller.gotrue.call(
            "PUT", "/user", bearer=signed_in.json()["access_token"], json={"email": new}
        )
        assert changed.status_code == 200, changed.text
        first_current = token_of(
            (await _wait_for_mails(server, old, before + 1))[-1], "confirm-email"
        )
        first_new = token_of((await _wait_for_mails(server, new, 1))[-1], "confirm-email")

        async def verify(token_hash: str) -> httpx.Response:
            response: httpx.Response = await caller.gotrue.call(
                "POST", "/verify", json={"type": "email_change", "token_hash": token_hash}
            )
            return response

        half_done = await verify(first_current)
        assert half_done.json()["code"] == "200", half_done.text
        body = {"type": "email_change"}
        await caller.gotrue.call("POST", "/resend", json=body | {"email": unique_email()})

        await caller.services.mail_sender.stop()
        with statements() as for_pending:
            pending = await caller.gotrue.call("POST", "/resend", json=body | {"email": old})
        with statements() as for_none:
            none = await caller.gotrue.call(
                "POST", "/resend", json=body | {"email": unique_email()}
            )
        caller.services.mail_sender.start()
        current = token_of((await _wait_for_mails(server, old, before + 2))[-1], "confirm-email")
        to_new = token_of((await _wait_for_mails(server, new, 2))[-1], "confirm-email")
        await requests_resolved(caller.services.database)
        stale = await verify(first_new)
        accepted = await verify(to_new)
        applied = await verify(current)

        assert (pending.status_code, pending.content) == (none.status_code, none.content)
        assert for_pending, "the request stores something"
        assert for_pending == for_none
        assert current not in (first_current, to_new)
        assert stale.status_code == 403, stale.text
        assert accepted.json()["code"] == "200", accepted.text  # the change starts over
        assert applied.status_code == 200, applied.text
        assert applied.json()["user"]["email"] == new
