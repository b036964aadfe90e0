"""Mail: the lifecycle's messages, rendered from templates, kept in an outbox, sent in the
background (docs/account-lifecycle.md).

    message.py   MailMessage: recipient, subject, text and HTML bodies
    mailer.py    Mailer: renders each lifecycle mail; `enqueue` in the caller's transaction
    outbox.py    the outbox's statements: enqueue_mail, and the sender's claim and outcomes
    sender.py    MailSender: the background task that delivers, retries and expires
    backends.py  SmtpBackend (aiosmtplib), FileBackend (.eml files), build_backend(settings)
    templates/   the Jinja2 templates (.txt and .html per mail)

A caller that issues a token writes the token and its mail in one transaction:

    def work(conn):
        token = ...  # stored as its SHA-256, expiring at `expires_at`
        mailer.enqueue(conn, mailer.password_reset(to=email, token=token, valid_for=ttl),
                       not_after=expires_at)
    await database.write(work)

A mail whose recipient may have no account (a password reset, a resent confirmation) is asked
for instead, the same one INSERT for any address (`mailer.request`); the sender resolves it
with the identity provider's `MailResolver`, which issues the token and renders the mail in
the sender's transaction (see `outbox.py`).
"""

from backend.app.mail.backends import FileBackend, MailBackend, SmtpBackend, build_backend
from backend.app.mail.mailer import CONFIRM_EMAIL_ROUTE, RESET_PASSWORD_ROUTE, Mailer
from backend.app.mail.message import MailMessage
from backend.app.mail.outbox import (
    MailRequest,
    MailResolver,
    MailState,
    Resolved,
    enqueue_mail,
    enqueue_request,
)
from backend.app.mail.sender import MailSender, retry_delay

__all__ = [
    "CONFIRM_EMAIL_ROUTE",
    "RESET_PASSWORD_ROUTE",
    "FileBackend",
    "MailBackend",
    "MailMessage",
    "MailRequest",
    "MailResolver",
    "MailSender",
    "MailState",
    "Mailer",
    "Resolved",
    "SmtpBackend",
    "build_backend",
    "enqueue_mail",
    "enqueue_request",
    "retry_delay",
]
