"""The hybrid token model in a real Chromium: the demo SPA and the browser client."""

from __future__ import annotations

import re
import time

from playwright.sync_api import Page, Request, expect

from backend.tests.helpers import PASSWORD, unique_email

SIGNED_IN = re.compile(r"^Signed in as ")


def sign_up(page: Page, email: str, display_name: str = "Ada") -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Display name").fill(display_name)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_text(f"Signed in as {email}")).to_be_visible()


def refresh_requests(page: Page) -> list[Request]:
    """Collects the POST /auth/refresh requests the page sends from now on."""
    seen: list[Request] = []
    page.on(
        "request",
        lambda request: (
            seen.append(request)
            if request.method == "POST" and request.url.endswith("/auth/refresh")
            else None
        ),
    )
    return seen


def wait_past_expiry(page: Page) -> None:
    expires_at = page.evaluate("window.myideas.client.session.expiresAt")
    time.sleep(max(0.0, expires_at - time.time() + 0.2))


class TestSessionAcrossReloads:
    def test_reload_keeps_the_session_and_signout_ends_it(self, page, start_stack):
        """sign up -> sign in -> items -> reload: still signed in -> sign out -> reload: out."""
        page.goto(start_stack())
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        email = unique_email()
        sign_up(page, email, display_name="Grace")
        expect(page.get_by_text("Display name: Grace")).to_be_visible()
        page.get_by_label("New idea").fill("Write the reference answer")
        page.get_by_role("button", name="Add idea").click()
        expect(page.get_by_text("Write the reference answer")).to_be_visible()

        page.reload()

        expect(page.get_by_text(f"Signed in as {email}")).to_be_visible()
        expect(page.get_by_text("Write the reference answer")).to_be_visible()
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        page.reload()
        expect(page.get_by_text("Not signed in.")).to_be_visible()
        expect(page.get_by_text(SIGNED_IN)).to_have_count(0)

    def test_tokens_are_out_of_reach_of_page_scripts(self, page, start_stack):
        """The refresh cookie is HttpOnly; no token sits in any web storage or the DOM."""
        page.goto(start_stack())
        sign_up(page, unique_email())
        cookies = page.context.cookies()

        visible_cookies = page.evaluate("document.cookie")
        storage = page.evaluate(
            "JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])"
        )
        html = page.content()

        refresh_cookie = next(c for c in cookies if c["name"] == "sb_refresh_token")
        assert refresh_cookie["httpOnly"] is True
        assert refresh_cookie["sameSite"] == "Lax"
        assert "sb_refresh_token" not in visible_cookies
        assert storage == "[[],[]]"
        assert refresh_cookie["value"] not in html
        assert "eyJ" not in html  # no JWT rendered anywhere


class TestItems:
    def test_add_edit_delete_items(self, page, start_stack):
        page.goto(start_stack())
        sign_up(page, unique_email())
        page.get_by_label("New idea").fill("First")
        page.get_by_role("button", name="Add idea").click()

        page.get_by_role("button", name="Edit First").click()
        page.get_by_label("New title for First").fill("Second")
        page.get_by_role("button", name="Save First").click()
        expect(page.get_by_text("Second")).to_be_visible()
        page.get_by_role("button", name="Delete Second").click()

        expect(page.get_by_role("list", name="Ideas").get_by_role("listitem")).to_have_count(0)


class TestExpiry:
    def test_expired_access_token_is_refreshed_once_and_the_call_succeeds(self, page, start_stack):
        page.goto(start_stack(access_token_ttl_seconds=2))
        sign_up(page, unique_email())
        refreshes = refresh_requests(page)
        wait_past_expiry(page)

        items = page.evaluate("window.myideas.client.request('/items')")

        assert items == {"items": []}
        assert len(refreshes) == 1

    def test_ten_parallel_calls_with_expired_token_cause_one_refresh(self, page, start_stack):
        page.goto(start_stack(access_token_ttl_seconds=2))
        sign_up(page, unique_email())
        refreshes = refresh_requests(page)
        wait_past_expiry(page)

        results = page.evaluate(
            "Promise.all(Array.from({length: 10}, () => window.myideas.client.request('/items')))"
        )

        assert len(results) == 10
        assert len(refreshes) == 1

    def test_clock_behind_server_recovers_through_401_refresh_and_retry(self, page, start_stack):
        """The reactive path: the page's clock runs a minute slow, so it sends a token it thinks
        is fresh; the server answers 401, and the client refreshes once and retries."""
        page.add_init_script("{ const real = Date.now; Date.now = () => real() - 60_000; }")
        page.goto(start_stack(access_token_ttl_seconds=2))
        sign_up(page, unique_email())
        refreshes = refresh_requests(page)
        statuses: list[int] = []
        page.on("response", lambda r: statuses.append(r.status) if "/items" in r.url else None)
        time.sleep(3.2)  # past the token's real expiry (2 s, plus the verifier's 1 s leeway)

        result = page.evaluate("window.myideas.client.request('/items')")

        assert result == {"items": []}
        assert len(refreshes) == 1
        assert statuses == [401, 200]


class TestTabs:
    def test_two_tabs_past_expiry_both_stay_signed_in(self, browser, start_stack):
        """Both tabs call after expiry at once: one refresh is shared, nobody is signed out."""
        url = start_stack(access_token_ttl_seconds=2)
        context = browser.new_context()
        try:
            first = context.new_page()
            first.goto(url)
            sign_up(first, unique_email())
            second = context.new_page()
            second.goto(url)
            expect(second.get_by_text(SIGNED_IN)).to_be_visible()
            responses: list[tuple[int, str]] = []
            for tab in (first, second):
                tab.on(
                    "response",
                    lambda r: (
                        responses.append((r.status, r.text()))
                        if r.url.endswith("/auth/refresh")
                        else None
                    ),
                )
            wait_past_expiry(first)
            wait_past_expiry(second)

            calls = [
                tab.evaluate_handle("window.myideas.client.request('/items')")
                for tab in (first, second)
            ]
            results = [handle.json_value() for handle in calls]

            assert results == [{"items": []}, {"items": []}]
            assert all(status == 200 for status, _ in responses)
            assert not any("refresh_token_reused" in body for _, body in responses)
            for tab in (first, second):
                expect(tab.get_by_text(SIGNED_IN)).to_be_visible()
        finally:
            context.close()

    def test_signing_out_in_one_tab_signs_out_the_other(self, browser, start_stack):
        url = start_stack()
        context = browser.new_context()
        try:
            first = context.new_page()
            first.goto(url)
            sign_up(first, unique_email())
            second = context.new_page()
            second.goto(url)
            expect(second.get_by_text(SIGNED_IN)).to_be_visible()

            first.get_by_role("button", name="Sign out").click()

            expect(second.get_by_role("button", name="Sign in")).to_be_visible()
            expect(second.get_by_text(SIGNED_IN)).to_be_hidden()
        finally:
            context.close()


class TestGuard:
    def test_protected_call_while_signed_out_throws_and_sends_nothing(self, page, start_stack):
        page.goto(start_stack())
        expect(page.get_by_text("Not signed in.")).to_be_visible()
        sent: list[str] = []
        page.on("request", lambda request: sent.append(request.url))

        error = page.evaluate(
            """() => window.myideas.client.request('/items').then(
                () => null, (error) => ({name: error.name, code: error.code}))"""
        )

        assert error == {"name": "NotAuthenticatedError", "code": "not_authenticated"}
        assert not [url for url in sent if "/items" in url]

    def test_raw_fetch_with_cookies_gets_401_with_hint_and_a_warning(self, page, start_stack):
        """The original bug: raw fetch, cookies, no Authorization header. 401 + hint, not 403."""
        page.goto(start_stack())
        sign_up(page, unique_email())
        warnings: list[str] = []
        page.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)

        result = page.evaluate(
            """async () => {
                const response = await fetch(window.myideas.apiBaseUrl + '/items',
                                             {credentials: 'include'});
                return {status: response.status, body: await response.json()};
            }"""
        )

        assert result["status"] == 401
        assert result["body"]["code"] == "unauthorized"
        assert "Authorization: Bearer" in result["body"]["details"]["hint"]
        assert len(warnings) == 1
        assert "global fetch" in warnings[0]


class TestAxiosAdapter:
    def test_axios_adapter_refreshes_once_for_parallel_calls(self, page, start_stack):
        page.goto(start_stack(access_token_ttl_seconds=2))
        sign_up(page, unique_email())
        refreshes = refresh_requests(page)
        wait_past_expiry(page)

        results = page.evaluate(
            """async () => {
                const {default: axios} = await import('/node_modules/axios/dist/esm/axios.js');
                const {attachApiClient} = await import('/src/axios-adapter.js');
                const http = attachApiClient(
                    axios.create({baseURL: window.myideas.apiBaseUrl}), window.myideas.client);
                const responses = await Promise.all([1, 2, 3].map(() => http.get('/items')));
                return responses.map((response) => response.data);
            }"""
        )

        assert results == [{"items": []}] * 3
        assert len(refreshes) == 1
