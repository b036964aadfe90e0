"""One mail: who it goes to, its subject, and its plain-text and HTML bodies."""

from __future__ import annotations

import email.policy
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

__all__ = ["MailMessage"]


@dataclass(frozen=True, slots=True)
class MailMessage:
    """A rendered mail, as the outbox stores it and a backend sends it.

    Attributes:
        to: the recipient's address, as stored (never the spelling typed in a request).
        subject: one line.
        text: the plain-text body.
        html: the HTML body, sent as the preferred alternative of `text`.
    """

    to: str
    subject: str
    text: str
    html: str

    def to_email(self, *, mail_from: str) -> EmailMessage:
        """The RFC 5322 message (`multipart/alternative`, text then HTML).

        Raises:
            ValueError: a header value with a line break (header injection) or unusable address.
        """
        # SMTP's policy: CRLF line ends, and a header value with CR or LF is refused, not folded.
        message = EmailMessage(policy=email.policy.SMTP)
        message["From"] = mail_from
        message["To"] = self.to
        message["Subject"] = self.subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = make_msgid(domain=_domain_of(mail_from))
        # Bodies as written (7bit, or 8bit when not ASCII), not quoted-printable: a link must
        # stay one whole line that a newcomer can copy out of an .eml file read as text.
        message.set_content(self.text, cte=_transfer_encoding(self.text))
        message.add_alternative(self.html, subtype="html", cte=_transfer_encoding(self.html))
        return message


def _transfer_encoding(body: str) -> str:
    return "7bit" if body.isascii() else "8bit"


def _domain_of(address: str) -> str:
    """The domain of `MAIL_FROM` (`Name <user@domain>`), for the Message-ID."""
    return address.rsplit("@", 1)[-1].rstrip(">").strip() or "localhost"
