"""Mail backends against a real SMTP server on loopback, and the `.eml` files of development."""

from __future__ import annotations

import email
import email.policy
import ssl

import aiosmtplib
import pytest

from backend.app.core.settings import Settings, SmtpTls
from backend.app.mail import FileBackend, MailMessage, SmtpBackend, build_backend
from backend.tests.mail.smtp_server import PASSWORD, USERNAME

FROM = "My Ideas <no-reply@example.com>"


def _message(to: str = "ada@example.com", subject: str = "Hello") -> MailMessage:
    return MailMessage(to=to, subject=subject, text="plain body", html="<p>html body</p>")


def _backend(server, tls: SmtpTls, **options) -> SmtpBackend:
    return SmtpBackend(host="127.0.0.1", port=server.port, tls=tls, timeout_seconds=5, **options)


class TestBuildBackend:
    def test_build_backend_without_smtp_host_writes_files_under_data_dir(self, tmp_path):
        """No `SMTP_HOST`: development's mail is files in DATA_DIR/outbox."""
        settings = Settings(_env_file=None, data_dir=tmp_path)

        backend = build_backend(settings)

        assert isinstance(backend, FileBackend)
        assert backend.directory == tmp_path / "outbox"

    @pytest.mark.parametrize(("tls", "port"), [("none", 25), ("starttls", 587), ("tls", 465)])
    def test_build_backend_with_smtp_host_defaults_the_port_by_tls(self, tmp_path, tls, port):
        """`SMTP_PORT` unset: the port that goes with `SMTP_TLS`."""
        settings = Settings(
            _env_file=None, data_dir=tmp_path, smtp_host="mail.example", smtp_tls=tls
        )

        backend = build_backend(settings)

        assert isinstance(backend, SmtpBackend)
        assert (backend.host, backend.port, backend.tls) == ("mail.example", port, SmtpTls(tls))

    def test_smtp_tls_defaults_to_starttls(self, tmp_path):
        """Plain text is never the default."""
        assert Settings(_env_file=None, data_dir=tmp_path).smtp_tls is SmtpTls.STARTTLS


class TestFileBackend:
    async def test_send_messages_writes_one_eml_file_each(self, tmp_path):
        """Each message is a whole .eml file a mail client (or a text editor) opens."""
        backend = build_backend(Settings(_env_file=None, data_dir=tmp_path))
        messages = [_message(subject=f"Mail {n}").to_email(mail_from=FROM) for n in range(2)]

        sent = await backend.send_messages(messages)

        files = sorted((tmp_path / "outbox").glob("*.eml"))
        assert sent == 2
        assert len(files) == 2
        assert not list((tmp_path / "outbox").glob("*.part"))
        parsed = [
            email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files
        ]
        assert sorted(p["Subject"] for p in parsed) == ["Mail 0", "Mail 1"]
        assert parsed[0]["To"] == "ada@example.com"
        assert b"\r\n" not in files[0].read_bytes()


class TestPlainSmtp:
    async def test_send_messages_delivers_to_the_server(self, smtp_server):
        """`SMTP_TLS=none`: the server receives the message, From and To as given."""
        backend = _backend(smtp_server, SmtpTls.NONE)

        await backend.send_messages([_message().to_email(mail_from=FROM)])

        (received,) = await smtp_server.wait_for(1)
        assert received.rcpt_tos == ["ada@example.com"]
        assert received.mail_from == "no-reply@example.com"
        assert received.message["Subject"] == "Hello"
        assert not received.over_tls

    async def test_send_messages_to_a_closed_port_raises(self, make_smtp_server):
        """Nothing listening: a connection error, for the sender to retry."""
        server = make_smtp_server(started=False)

        with pytest.raises(aiosmtplib.SMTPConnectError):
            await _backend(server, SmtpTls.NONE).send_messages(
                [_message().to_email(mail_from=FROM)]
            )


class TestStartTls:
    async def test_starttls_with_a_trusted_certificate_delivers_over_tls(
        self, make_smtp_server, trusted_ca
    ):
        """The CA named by `SSL_CERT_FILE` (the system store's override) is trusted."""
        server = make_smtp_server(starttls=True, login=True)
        backend = _backend(server, SmtpTls.STARTTLS, username=USERNAME, password=PASSWORD)

        await backend.send_messages([_message().to_email(mail_from=FROM)])

        (received,) = await server.wait_for(1)
        assert received.over_tls

    async def test_starttls_refused_by_a_server_without_it_sends_nothing(self, smtp_server):
        """No STARTTLS offered: refused before MAIL, never a plain-text fallback."""
        backend = _backend(smtp_server, SmtpTls.STARTTLS)

        with pytest.raises(aiosmtplib.SMTPException, match="STARTTLS"):
            await backend.send_messages([_message().to_email(mail_from=FROM)])

        assert smtp_server.handler.commands == []
        assert smtp_server.received == []

    async def test_starttls_with_an_untrusted_certificate_is_refused(self, make_smtp_server):
        """A certificate the trust store does not vouch for: no connection, nothing sent."""
        server = make_smtp_server(starttls=True)

        with pytest.raises(ssl.SSLCertVerificationError):
            await _backend(server, SmtpTls.STARTTLS).send_messages(
                [_message().to_email(mail_from=FROM)]
            )

        assert server.handler.commands == []

    async def test_wrong_login_is_refused(self, make_smtp_server, trusted_ca):
        """A password the server refuses is an authentication error, nothing sent."""
        server = make_smtp_server(starttls=True, login=True)
        backend = _backend(server, SmtpTls.STARTTLS, username=USERNAME, password="wrong")

        with pytest.raises(aiosmtplib.SMTPAuthenticationError):
            await backend.send_messages([_message().to_email(mail_from=FROM)])

        assert server.received == []


class TestImplicitTls:
    async def test_tls_from_the_first_byte_delivers(self, make_smtp_server, trusted_ca):
        """`SMTP_TLS=tls` (port 465 style)."""
        server = make_smtp_server(implicit_tls=True)

        await _backend(server, SmtpTls.TLS).send_messages([_message().to_email(mail_from=FROM)])

        (received,) = await server.wait_for(1)
        assert received.over_tls
