"""The mails of the account lifecycle, rendered from templates, and their enqueueing.

`Mailer` is what the lifecycle's service calls: one method per mail, each returning a
`MailMessage`, and `enqueue`, which stores it in the caller's transaction (so a token and the mail
that carries it commit together, or neither does) and wakes this process's sender.

HTML escaping is Jinja2's autoescape (on for `.html` templates), never done by hand; the
plain-text bodies are not HTML and are not escaped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from sqlalchemy.engine import Connection

from backend.app.mail.message import MailMessage
from backend.app.mail.outbox import MailRequest, enqueue_mail, enqueue_request

__all__ = ["CONFIRM_EMAIL_ROUTE", "REQUEST_WAKE_DELAY_SECONDS", "RESET_PASSWORD_ROUTE", "Mailer"]

# How long after a mail request the sender is woken to resolve it (see `Mailer.request`).
REQUEST_WAKE_DELAY_SECONDS = 0.05

# The SPA's routes that a link opens; the token goes in the fragment, which no browser sends to
# a server and no `Referer` carries, so it never reaches a server log.
CONFIRM_EMAIL_ROUTE = "confirm-email"
RESET_PASSWORD_ROUTE = "reset-password"  # noqa: S105 -- a route's name, not a password

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent / "templates"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
    undefined=jinja2.StrictUndefined,  # a missing variable is a bug, not an empty string
    keep_trailing_newline=True,
)

_SUBJECTS = {
    "signup_confirmation": "Confirm your email for {product}",
    "email_change_confirmation": "Confirm your new email for {product}",
    "email_change_notice": "Your {product} email is being changed",
    "email_change_current": "Confirm the change of your {product} email",
    "password_reset": "Reset your {product} password",
    "magic_link": "Your {product} sign-in link",
    "invite": "You are invited to {product}",
    "reauthentication": "Your {product} confirmation code",
}


class Mailer:
    """Renders the lifecycle's mails and enqueues them.

    Args:
        product_name: `MAIL_PRODUCT_NAME`, in every subject and body.
        site_url: `SITE_URL`, the SPA that the links open (no trailing slash).
        wake_sender: called after each enqueue, so this process sends at once rather than at
            its next poll (the `MailSender.wake` of this app's services).
    """

    def __init__(
        self,
        *,
        product_name: str,
        site_url: str,
        wake_sender: Callable[[], None] | None = None,
    ):
        self.product_name = product_name
        self.site_url = site_url.rstrip("/")
        self._wake_sender = wake_sender

    def signup_confirmation(
        self,
        *,
        to: str,
        token: str,
        valid_for: timedelta,
        display_name: str | None = None,
        link: str | None = None,
        code: str | None = None,
    ) -> MailMessage:
        """The link that confirms a sign-up's address (`SITE_URL/#confirm-email?token=…`;
        asked for through GoTrue's API, `link` is GoTrue's `/verify` URL and `code` its code)."""
        return self._render(
            "signup_confirmation",
            to=to,
            display_name=display_name,
            link=link or self._link(CONFIRM_EMAIL_ROUTE, token),
            code=code,
            valid_for=_duration(valid_for),
        )

    def email_change_confirmation(
        self,
        *,
        to: str,
        token: str,
        valid_for: timedelta,
        display_name: str | None = None,
        link: str | None = None,
        code: str | None = None,
    ) -> MailMessage:
        """To the new address of an email change: the link that applies it."""
        return self._render(
            "email_change_confirmation",
            to=to,
            display_name=display_name,
            link=link or self._link(CONFIRM_EMAIL_ROUTE, token),
            code=code,
            valid_for=_duration(valid_for),
        )

    def email_change_notice(
        self, *, to: str, new_email: str, display_name: str | None = None
    ) -> MailMessage:
        """To the old address of an email change: what is asked, with no token and no link
        that could apply it (whoever reads the old mailbox must not be able to confirm)."""
        return self._render(
            "email_change_notice", to=to, display_name=display_name, new_email=new_email
        )

    def email_change_current_confirmation(
        self,
        *,
        to: str,
        new_email: str,
        link: str,
        code: str | None,
        valid_for: timedelta,
        display_name: str | None = None,
    ) -> MailMessage:
        """GoTrue's API only, with its secure email change: to the current address, its own
        link (and code) that confirms the change from this side; the new address gets the
        other. Both are needed, so neither mailbox alone moves the account."""
        return self._render(
            "email_change_current",
            to=to,
            display_name=display_name,
            new_email=new_email,
            link=link,
            code=code,
            valid_for=_duration(valid_for),
        )

    def password_reset(
        self,
        *,
        to: str,
        token: str,
        valid_for: timedelta,
        display_name: str | None = None,
        link: str | None = None,
        code: str | None = None,
    ) -> MailMessage:
        """The link that lets the owner of `to` choose a new password."""
        return self._render(
            "password_reset",
            to=to,
            display_name=display_name,
            link=link or self._link(RESET_PASSWORD_ROUTE, token),
            code=code,
            valid_for=_duration(valid_for),
        )

    def magic_link(
        self,
        *,
        to: str,
        token: str,
        valid_for: timedelta,
        link: str | None = None,
        code: str | None = None,
        display_name: str | None = None,
    ) -> MailMessage:
        """GoTrue's API only (`POST /auth/v1/otp`): a link that signs in, and its code."""
        if link is None:
            raise ValueError("a magic link is GoTrue's: it needs the link to /auth/v1/verify")
        del token  # the link carries it
        return self._render(
            "magic_link",
            to=to,
            display_name=display_name,
            link=link,
            code=code,
            valid_for=_duration(valid_for),
        )

    def invite(
        self,
        *,
        to: str,
        token: str,
        valid_for: timedelta,
        link: str | None = None,
        code: str | None = None,
        display_name: str | None = None,
    ) -> MailMessage:
        """GoTrue's API only (`POST /auth/v1/invite`): the link that accepts an invitation."""
        if link is None:
            raise ValueError("an invitation is GoTrue's: it needs the link to /auth/v1/verify")
        del token  # the link carries it
        return self._render(
            "invite",
            to=to,
            display_name=display_name,
            link=link,
            code=code,
            valid_for=_duration(valid_for),
        )

    def reauthentication(
        self, *, to: str, code: str, valid_for: timedelta, display_name: str | None = None
    ) -> MailMessage:
        """GoTrue's API only (`GET /auth/v1/reauthenticate`): the nonce a password change needs."""
        return self._render(
            "reauthentication",
            to=to,
            display_name=display_name,
            code=code,
            valid_for=_duration(valid_for),
        )

    def enqueue(self, conn: Connection, message: MailMessage, *, not_after: datetime) -> int:
        """Store `message` in the caller's transaction (`enqueue_mail`), and wake the sender.

        Returns:
            the message's id in the outbox (what the log lines name).
        """
        message_id = enqueue_mail(conn, message, not_after=not_after)
        if self._wake_sender is not None:
            # Before the commit: the sender looks again shortly after a wake (see MailSender).
            self._wake_sender()
        return message_id

    def request(self, conn: Connection, request: MailRequest, *, not_after: datetime) -> int:
        """Store `request` in the caller's transaction (`enqueue_request`), and wake the sender,
        which resolves it into a mail (or nothing, for an address without an account).

        Returns:
            the row's id in the outbox.
        """
        request_id = enqueue_request(conn, request, not_after=not_after)
        if self._wake_sender is not None:
            # A moment later, not at once: woken inside the request's transaction, the sender
            # (on this event loop) may resolve the request while its answer is still on the way,
            # and a known address's resolution is not an unknown one's work: a timing difference
            # again (measured: 1.05 on PostgreSQL at once, 1.00 deferred; bench/forgot_timing.py).
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no event loop in this thread: nothing to overlap with
                self._wake_sender()
            else:
                loop.call_later(REQUEST_WAKE_DELAY_SECONDS, self._wake_sender)
        return request_id

    def _link(self, route: str, token: str) -> str:
        return f"{self.site_url}/#{route}?token={quote(token, safe='')}"

    def _render(self, name: str, *, to: str, **values: Any) -> MailMessage:
        subject = _SUBJECTS[name].format(product=self.product_name)
        context = {
            "subject": subject,
            "product": self.product_name,
            "site_url": self.site_url,
            "email": to,
            **values,
        }
        return MailMessage(
            to=to,
            subject=subject,
            text=_TEMPLATES.get_template(f"{name}.txt").render(context),
            html=_TEMPLATES.get_template(f"{name}.html").render(context),
        )


def _duration(value: timedelta) -> str:
    """`24 hours`, `1 hour`, `30 minutes`: how long a link works, in words."""
    seconds = int(value.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0 and not (unit == "day" and seconds < 2 * size):
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'' if minutes == 1 else 's'}"
