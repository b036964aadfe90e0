"""A real SMTP server on loopback (aiosmtpd, in a thread of its own) that keeps what it receives.

Variants: plain; STARTTLS offered (and required before MAIL) with a certificate from a test CA;
TLS from the first byte; with a login; and switches that make it refuse (451 on DATA, 550 on
RCPT) while set. `stop()` and `start()` again on the same port play an outage.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
import threading
import weakref
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from backend.tests.helpers import free_port

__all__ = ["Received", "SmtpServer", "TestCertificates"]

_POLL_SECONDS = 0.02
USERNAME = "mailer"
PASSWORD = "smtp-password-value-8642"


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    over_tls: bool


class _Handler:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.commands: list[str] = []  # MAIL and RCPT as seen, to prove what was (not) said
        self.refuse_data: str | None = None
        self.refuse_rcpt: str | None = None
        self.lock = threading.Lock()

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        with self.lock:
            self.commands.append("MAIL")
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse_rcpt:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.refuse_data:
            return self.refuse_data
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), message, _over_tls(server))
            )
        return "250 Message accepted for delivery"


def _over_tls(server: Any) -> bool:
    return server.transport.get_extra_info("ssl_object") is not None


def _authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USERNAME.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


class TestCertificates:
    """A CA of the test's own and a certificate it issued for 127.0.0.1 and localhost."""

    __test__ = False  # not a test class, despite its name

    def __init__(self) -> None:
        self.ca = trustme.CA()
        self.server_cert = self.ca.issue_cert("127.0.0.1", "localhost")

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_cert.configure_cert(context)
        return context


class _ClosingController(Controller):
    """A Controller whose `stop()` first closes the connections still open.

    aiosmtpd's own `stop()` ends the loop with client connections open; their transports are then
    collected later, inside whichever test runs next, as an "unclosed transport" ResourceWarning,
    which this suite's `filterwarnings = error` turns into that test's failure.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()

    def factory(self) -> SMTP:
        session: SMTP = super().factory()
        self._sessions.add(session)
        return session

    async def _close_sessions(self) -> None:
        for session in list(self._sessions):
            if isinstance(session.transport, asyncio.WriteTransport):
                session.transport.abort()
        # abort() calls connection_lost on a later turn of the loop (two, under TLS).
        await asyncio.sleep(0.05)

    def stop(self, no_assert: bool = False) -> None:
        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(self._close_sessions(), self.loop).result(5)
        super().stop(no_assert)


class SmtpServer:
    """aiosmtpd on 127.0.0.1:`port`; `received` is every message it accepted.

    Args:
        starttls: offer STARTTLS with `certificates`, and require it before MAIL.
        implicit_tls: speak TLS from the first byte with `certificates`.
        login: require AUTH LOGIN/PLAIN with `USERNAME`/`PASSWORD` (only over TLS).
    """

    def __init__(
        self,
        *,
        certificates: TestCertificates | None = None,
        starttls: bool = False,
        implicit_tls: bool = False,
        login: bool = False,
    ):
        self.port = free_port()
        self.handler = _Handler()
        self._certificates = certificates
        self._starttls = starttls
        self._implicit_tls = implicit_tls
        self._login = login
        self._controller: _ClosingController | None = None

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def start(self) -> None:
        kwargs: dict[str, Any] = {}
        if self._starttls:
            assert self._certificates is not None
            kwargs |= {
                "tls_context": self._certificates.server_context(),
                "require_starttls": True,
            }
        if self._implicit_tls:
            assert self._certificates is not None
            kwargs["ssl_context"] = self._certificates.server_context()
        if self._login:
            kwargs |= {"authenticator": _authenticator, "auth_required": True}
        self._controller = _ClosingController(
            self.handler, hostname="127.0.0.1", port=self.port, ready_timeout=5.0, **kwargs
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    async def wait_for(self, count: int, *, within: float = 10.0) -> list[Received]:
        """The messages received, once there are at least `count` (else after `within` s).

        Polled: the server runs in a thread of its own, with no event this loop could await.
        """
        for _ in range(int(within / _POLL_SECONDS)):
            if len(self.received) >= count:
                break
            await asyncio.sleep(_POLL_SECONDS)
        return self.received
