"""The lifecycle's mails: rendered from templates, escaped by Jinja2, tokens only in fragments."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from backend.app.core.settings import Settings
from backend.app.mail import Mailer, MailMessage

TOKEN = "tok_Zx9-abc_DEF123ghiJKL456mnoPQR789stuVWX0yz"
SITE = "https://app.example.com"
HOSTILE_NAME = '<script>alert("name")</script>'
HOSTILE_ADDRESS = '"<img src=x onerror=alert(1)>"@example.com'


@pytest.fixture
def mailer() -> Mailer:
    return Mailer(product_name="Ideas & Co", site_url=SITE + "/")


def _links(text: str) -> list[str]:
    return re.findall(r"https?://[^\s\"'<>]+", text)


class TestLinks:
    @pytest.mark.parametrize(
        ("kind", "route"),
        [
            ("signup_confirmation", "confirm-email"),
            ("email_change_confirmation", "confirm-email"),
            ("password_reset", "reset-password"),
        ],
    )
    def test_link_token_is_in_the_fragment_only(self, mailer, kind, route):
        """The token travels in the URL fragment: no path, no query string a server would log."""
        message = getattr(mailer, kind)(
            to="ada@example.com", token=TOKEN, valid_for=timedelta(hours=1)
        )

        (link,) = {link for link in _links(message.text) if TOKEN in link}
        parts = urlsplit(link)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == SITE + "/"
        assert parts.query == ""
        assert parts.fragment.split("?")[0] == route
        assert parse_qs(parts.fragment.split("?", 1)[1]) == {"token": [TOKEN]}
        assert f'href="{link}"' in message.html
        assert TOKEN not in message.subject

    def test_email_change_notice_carries_no_token_and_no_action_link(self, mailer):
        """The old address learns of the change but gets nothing that could confirm it."""
        message = mailer.email_change_notice(to="old@example.com", new_email="new@example.com")

        assert "#" not in "".join(_links(message.text + message.html))
        assert "token" not in (message.text + message.html).lower()
        assert "new@example.com" in message.text
        assert _links(message.text) == [SITE]

    def test_links_use_the_site_url_setting(self, tmp_path):
        """`SITE_URL` defaults to the first CORS origin, the SPA's."""
        settings = Settings(
            _env_file=None, data_dir=tmp_path, cors_origins=["http://localhost:5173"]
        )
        mailer = Mailer(product_name=settings.mail_product_name, site_url=settings.site_url)

        message = mailer.password_reset(to="a@example.com", token=TOKEN, valid_for=timedelta(1))

        assert f"http://localhost:5173/#reset-password?token={TOKEN}" in message.text
        assert "My Ideas" in message.subject


class TestEscaping:
    def test_hostile_display_name_and_address_are_escaped_in_html(self, mailer):
        """Markup in a display name or an address is text in the HTML body, not markup."""
        message = mailer.password_reset(
            to=HOSTILE_ADDRESS, token=TOKEN, valid_for=timedelta(hours=1), display_name=HOSTILE_NAME
        )

        assert "<script>" not in message.html
        assert "<img" not in message.html
        assert "&lt;script&gt;alert(&#34;name&#34;)&lt;/script&gt;" in message.html
        assert "&lt;img src=x onerror=alert(1)&gt;" in message.html
        assert "Ideas &amp; Co" in message.html

    def test_plain_text_body_is_not_html_escaped(self, mailer):
        """The text body shows what was written, not entities."""
        message = mailer.signup_confirmation(
            to="ada@example.com", token=TOKEN, valid_for=timedelta(days=1), display_name="Ada & Bo"
        )

        assert "Hello Ada & Bo," in message.text
        assert "Ideas & Co" in message.text
        assert "24 hours" in message.text

    def test_hostile_new_address_in_the_notice_is_escaped(self, mailer):
        """The notice shows the requested new address as text."""
        message = mailer.email_change_notice(to="old@example.com", new_email=HOSTILE_ADDRESS)

        assert "<img" not in message.html
        assert "&lt;img src=x onerror=alert(1)&gt;" in message.html


class TestMailMessage:
    def test_to_email_is_multipart_alternative_text_then_html(self):
        """The HTML body is the preferred alternative; both bodies are there."""
        message = MailMessage(to="a@example.com", subject="Hi", text="plain", html="<p>rich</p>")

        rendered = message.to_email(mail_from="My Ideas <no-reply@example.com>")

        assert rendered.get_content_type() == "multipart/alternative"
        parts = [part.get_content_type() for part in rendered.iter_parts()]
        assert parts == ["text/plain", "text/html"]
        assert rendered["Message-ID"].endswith("@example.com>")

    @pytest.mark.parametrize("field", ["to", "subject"])
    def test_header_with_a_line_break_is_refused(self, field):
        """A CR or LF in a header is header injection: refused, never folded into the mail."""
        values = {"to": "a@example.com", "subject": "Hi", "text": "t", "html": "h"}
        values[field] += "\r\nBcc: victim@example.com"

        with pytest.raises(ValueError, match="linefeed or carriage return"):
            MailMessage(**values).to_email(mail_from="no-reply@example.com")


class TestDuration:
    @pytest.mark.parametrize(
        ("valid_for", "words"),
        [
            (timedelta(hours=1), "1 hour"),
            (timedelta(days=1), "24 hours"),
            (timedelta(days=2), "2 days"),
            (timedelta(minutes=90), "90 minutes"),
            (timedelta(seconds=20), "1 minute"),
        ],
    )
    def test_valid_for_is_said_in_words(self, mailer, valid_for, words):
        """How long the link works, in the unit a reader expects."""
        message = mailer.password_reset(to="a@example.com", token=TOKEN, valid_for=valid_for)

        assert f"for {words}." in message.text


class TestEmailChangeCurrentConfirmation:
    def test_the_current_address_gets_its_own_link_and_code_and_the_new_address_as_text(
        self, mailer
    ):
        """GoTrue's secure email change: the old address's mail carries its own link and code
        (GoTrue's `{{ .ConfirmationURL }}` and `{{ .Token }}`); the requested address is text."""
        link = "https://api.example.com/auth/v1/verify?token=abc&type=email_change&redirect_to=x"

        message = mailer.email_change_current_confirmation(
            to="old@example.com",
            new_email=HOSTILE_ADDRESS,
            link=link,
            code="123456",
            valid_for=timedelta(days=1),
        )

        assert link in _links(message.text)
        assert 'href="https://api.example.com/auth/v1/verify?token=abc&amp;type=email_change' in (
            message.html
        )
        assert "123456" in message.text
        assert "123456" in message.html
        assert "<img" not in message.html
        assert "&lt;img src=x onerror=alert(1)&gt;" in message.html
        assert "24 hours" in message.text
