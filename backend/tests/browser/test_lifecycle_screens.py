"""The account-lifecycle screens of the demo app in Chromium, with a real SMTP server on loopback:
each flow that starts from a mail reads the mail and follows its link."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from backend.app.cli import FRONTEND_DIR
from backend.app.main import create_app
from backend.tests.browser.conftest import TEST_MOUNTS, serve_static
from backend.tests.browser.test_spa import SIGNED_IN, sign_up
from backend.tests.helpers import PASSWORD, free_port, unique_email
from backend.tests.live_server import live_server

# The mail tests' fixtures: a real SMTP server (aiosmtpd) on loopback.
from backend.tests.mail.conftest import certificates, make_smtp_server
from backend.tests.mail.smtp_server import SmtpServer

__all__ = ["certificates", "make_smtp_server"]

NEW_PASSWORD = "a brand new passphrase"


class Stack:
    """The app, the API (SITE_URL pointing at the app) and the SMTP server the API sends to."""

    def __init__(self, url: str, smtp: SmtpServer):
        self.url = url
        self.smtp = smtp

    def link(self, recipient: str, route: str, *, within: float = 10.0) -> str:
        """The newest `#route?token=` link in a mail to `recipient`, waiting for the sender."""
        pattern = re.compile(rf"https?://\S+#{route}\?token=[A-Za-z0-9_%\-]+")
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for received in reversed(self.smtp.received):
                if recipient in received.rcpt_tos:
                    body = received.message.get_body(("plain",))
                    found = pattern.search(body.get_content()) if body else None
                    if found:
                        return found.group(0)
            time.sleep(0.05)
        raise AssertionError(f"no {route} link mailed to {recipient}")


@pytest.fixture
def lifecycle_stack(
    make_settings: Callable[..., Any], make_smtp_server: Callable[..., SmtpServer]
) -> Iterator[Callable[..., Stack]]:
    with ExitStack() as stack:

        def start(**overrides: Any) -> Stack:
            smtp = make_smtp_server()
            spa = serve_static(FRONTEND_DIR, TEST_MOUNTS)
            stack.callback(spa.server_close)
            stack.callback(spa.shutdown)
            origin = f"http://127.0.0.1:{spa.server_address[1]}"
            api_port = free_port()
            url = f"{origin}/index.html?api=http://127.0.0.1:{api_port}"
            settings = make_settings(
                cors_origins=[origin],
                site_url=url,  # the links open the app pointed at this API
                smtp_host="127.0.0.1",
                smtp_port=smtp.port,
                smtp_tls="none",
                **overrides,
            )
            stack.enter_context(
                live_server(create_app(settings), port=api_port, log_level="warning")
            )
            return Stack(url, smtp)

        yield start


def sign_in(page: Page, email: str, password: str) -> None:
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


class TestPasswordReset:
    def test_forgot_password_mails_a_link_that_sets_a_new_password_and_signs_in(
        self, page, lifecycle_stack
    ):
        app = lifecycle_stack()
        page.goto(app.url)
        email = unique_email()
        sign_up(page, email)
        page.get_by_role("button", name="Sign out").click()

        page.get_by_role("button", name="Forgot password?").click()
        page.get_by_label("Address for the reset link").fill(email)
        page.get_by_role("button", name="Send reset link").click()
        expect(page.get_by_text("a link to reset its password is on its way")).to_be_visible()
        page.goto(app.link(email, "reset-password"))
        page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
        page.get_by_role("button", name="Set password").click()

        expect(page.get_by_text(f"Signed in as {email}")).to_be_visible()
        assert "token=" not in page.url  # the token left the address bar once read
        page.get_by_role("button", name="Sign out").click()
        sign_in(page, email, NEW_PASSWORD)
        expect(page.get_by_text(f"Signed in as {email}")).to_be_visible()


class TestEmailConfirmation:
    def test_the_mailed_link_confirms_the_address_and_sign_in_then_works(
        self, page, lifecycle_stack
    ):
        app = lifecycle_stack(email_confirmation_required=True)
        page.goto(app.url)
        email = unique_email()
        page.get_by_label("Email", exact=True).fill(email)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Sign up").click()
        expect(
            page.get_by_role("alert").filter(has_text=re.compile("confirm", re.I))
        ).to_be_visible()

        page.goto(app.link(email, "confirm-email"))

        expect(page.get_by_text(f"Email confirmed: {email}")).to_be_visible()
        assert "token=" not in page.url
        page.get_by_role("button", name="Continue").click()
        sign_in(page, email, PASSWORD)
        expect(page.get_by_text(f"Signed in as {email}")).to_be_visible()


class TestAccount:
    def test_change_password_then_sign_in_with_the_new_one(self, page, lifecycle_stack):
        app = lifecycle_stack()
        page.goto(app.url)
        email = unique_email()
        sign_up(page, email)
        form = page.get_by_role("form", name="Change password")

        form.get_by_label("Current password").fill(PASSWORD)
        form.get_by_label("New password").fill(NEW_PASSWORD)
        form.get_by_role("button", name="Change password").click()

        expect(page.get_by_text("Password changed.")).to_be_visible()
        page.get_by_role("button", name="Sign out").click()
        sign_in(page, email, PASSWORD)
        expect(page.get_by_text("Invalid email or password")).to_be_visible()
        sign_in(page, email, NEW_PASSWORD)
        expect(page.get_by_text(f"Signed in as {email}")).to_be_visible()

    def test_change_email_is_applied_by_the_link_mailed_to_the_new_address(
        self, page, lifecycle_stack
    ):
        app = lifecycle_stack()
        page.goto(app.url)
        old, new = unique_email(), unique_email()
        sign_up(page, old)
        form = page.get_by_role("form", name="Change email")

        form.get_by_label("New address").fill(new)
        form.get_by_label("Current password").fill(PASSWORD)
        form.get_by_role("button", name="Change email").click()
        expect(page.get_by_text(f"Check {new} for a link")).to_be_visible()
        page.goto(app.link(new, "confirm-email"))

        expect(page.get_by_text(f"Email confirmed: {new}")).to_be_visible()
        page.get_by_role("button", name="Continue").click()
        page.get_by_role("button", name="Sign out").click()
        sign_in(page, new, PASSWORD)
        expect(page.get_by_text(f"Signed in as {new}")).to_be_visible()


class TestSessionsPanel:
    def test_end_other_sessions_signs_out_the_other_device(self, browser: Browser, lifecycle_stack):
        app = lifecycle_stack()
        laptop, phone = browser.new_context(), browser.new_context()
        try:
            here = laptop.new_page()
            here.goto(app.url)
            email = unique_email()
            sign_up(here, email)
            there = phone.new_page()
            there.goto(app.url)
            sign_in(there, email, PASSWORD)
            expect(there.get_by_text(SIGNED_IN)).to_be_visible()
            here.reload()
            sessions = here.get_by_role("list", name="Sessions").get_by_role("listitem")
            expect(sessions).to_have_count(2)

            here.get_by_role("button", name="End other sessions").click()

            expect(sessions).to_have_count(1)
            expect(sessions).to_contain_text(["This device"])
            there.reload()
            expect(there.get_by_text("Not signed in.")).to_be_visible()
            expect(here.get_by_text(SIGNED_IN)).to_be_visible()
        finally:
            laptop.close()
            phone.close()
