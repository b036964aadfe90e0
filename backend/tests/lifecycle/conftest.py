"""The lifecycle's tests use the mail tests' real SMTP server (aiosmtpd on loopback)."""

from backend.tests.mail.conftest import certificates, make_smtp_server

__all__ = ["certificates", "make_smtp_server"]
