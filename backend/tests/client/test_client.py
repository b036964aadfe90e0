"""The Python client against a real uvicorn on loopback: sign-in, refresh, races, secrets."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import httpx
import pytest

from backend.app.client import ApiError, AsyncClient, Client, PasswordAuth
from backend.tests.client.conftest import Sent
from backend.tests.helpers import PASSWORD, unique_email

# The access token lives 1 s, and tokens are verified with up to 1 s of leeway.
SHORT_TTL = 1
PAST_EXPIRY = 2.5


def signed_up(base_url: str) -> str:
    """A new account's email (its password is PASSWORD)."""
    email = unique_email()
    with Client(base_url) as anonymous:
        anonymous.sign_up(email, PASSWORD, display_name="Ada")
    return email


class TestPasswordAuth:
    def test_sync_first_call_signs_in_once_then_sends_the_bearer(self, serve):
        """One CSRF fetch and one sign-in, then me and items with the bearer."""
        base_url = serve()
        email = signed_up(base_url)
        sent = Sent()

        with Client(base_url, auth=PasswordAuth(email, PASSWORD), event_hooks=sent.hooks()) as api:
            me = api.me()
            created = api.create_item("First idea", "from Python")
            items = api.list_items()

        assert me.email == email
        assert me.profile.display_name == "Ada"
        assert [item.id for item in items] == [created.id]
        assert items[0].title == "First idea"
        assert sent["GET /auth/csrf"] == 1
        assert sent["POST /auth/signin"] == 1
        assert sent["POST /auth/refresh"] == 0

    async def test_async_first_call_signs_in_once_then_sends_the_bearer(self, serve):
        """The same with AsyncClient."""
        base_url = serve()
        email = signed_up(base_url)
        sent = Sent()

        auth = PasswordAuth(email, PASSWORD)
        async with AsyncClient(base_url, auth=auth, event_hooks=sent.async_hooks()) as api:
            me = await api.me()
            created = await api.create_item("Async idea")
            items = await api.list_items()

        assert me.email == email
        assert [item.id for item in items] == [created.id]
        assert sent["POST /auth/signin"] == 1

    def test_plain_httpx_client_with_the_auth_reaches_protected_routes(self, serve):
        """PasswordAuth on its own, in any httpx.Client."""
        base_url = serve()
        email = signed_up(base_url)

        with httpx.Client(base_url=base_url, auth=PasswordAuth(email, PASSWORD)) as client:
            response = client.get("/items")

        assert response.status_code == 200
        assert response.json() == {"items": []}

    def test_expired_access_token_refreshes_once_and_the_retry_succeeds(self, serve):
        """A 401 after expiry: one refresh through the cookie, the request again, no sign-in."""
        base_url = serve(access_token_ttl_seconds=SHORT_TTL)
        email = signed_up(base_url)
        sent = Sent()
        statuses: list[int] = []
        hooks = sent.hooks() | {
            "response": [lambda response: statuses.append(response.status_code)]
        }

        with Client(base_url, auth=PasswordAuth(email, PASSWORD), event_hooks=hooks) as api:
            api.me()
            time.sleep(PAST_EXPIRY)
            statuses.clear()
            me = api.me()

        assert me.email == email
        assert statuses == [401, 200, 200]  # me, refresh, me again
        assert sent["POST /auth/refresh"] == 1
        assert sent["POST /auth/signin"] == 1

    def test_refused_refresh_signs_in_again(self, serve):
        """Every session ended elsewhere: the refresh is refused, so the auth signs in anew."""
        base_url = serve()
        email = signed_up(base_url)
        sent = Sent()

        with (
            Client(base_url, auth=PasswordAuth(email, PASSWORD), event_hooks=sent.hooks()) as api,
            Client(base_url, auth=PasswordAuth(email, PASSWORD)) as other,
        ):
            api.me()
            other.me()
            other.sign_out(scope="global")
            me = api.me()

        assert me.email == email
        assert sent["POST /auth/refresh"] == 1
        assert sent["POST /auth/signin"] == 2

    async def test_concurrent_requests_after_expiry_share_one_refresh(self, serve):
        """Five requests meet the expired token at once: one refresh, and all five succeed."""
        base_url = serve(access_token_ttl_seconds=SHORT_TTL)
        email = signed_up(base_url)
        sent = Sent()

        auth = PasswordAuth(email, PASSWORD)
        async with AsyncClient(base_url, auth=auth, event_hooks=sent.async_hooks()) as api:
            await api.create_item("Racing")
            await asyncio.sleep(PAST_EXPIRY)
            results = await asyncio.gather(*(api.list_items() for _ in range(5)))

        assert [len(items) for items in results] == [1] * 5
        assert sent["POST /auth/refresh"] == 1
        assert sent["POST /auth/signin"] == 1
        assert sent["GET /items"] >= 6  # at least one 401 and its retry, the others' retries

    def test_threads_after_expiry_share_one_refresh(self, serve):
        """The same race in the sync client, from four threads."""
        base_url = serve(access_token_ttl_seconds=SHORT_TTL)
        email = signed_up(base_url)
        sent = Sent()
        results: list[str] = []

        with Client(base_url, auth=PasswordAuth(email, PASSWORD), event_hooks=sent.hooks()) as api:
            api.me()
            time.sleep(PAST_EXPIRY)
            threads = [
                threading.Thread(target=lambda: results.append(api.me().email)) for _ in range(4)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)

        assert results == [email] * 4
        assert sent["POST /auth/refresh"] == 1

    def test_wrong_password_raises_api_error_with_the_code(self, serve):
        """The sign-in's refusal reaches the caller as ApiError, with the API's code."""
        base_url = serve()
        email = signed_up(base_url)

        with (
            Client(base_url, auth=PasswordAuth(email, "not the password")) as api,
            pytest.raises(ApiError) as caught,
        ):
            api.me()

        assert caught.value.status == 401
        assert caught.value.code == "auth_invalid_credentials"
        assert caught.value.message == "Invalid email or password"


class TestClient:
    def test_two_clients_share_nothing(self, serve):
        """Two sessions of one user: one signing out leaves the other signed in, unrefreshed."""
        base_url = serve()
        email = signed_up(base_url)
        sent_by_b = Sent()

        with (
            Client(base_url, auth=PasswordAuth(email, PASSWORD)) as a,
            Client(
                base_url, auth=PasswordAuth(email, PASSWORD), event_hooks=sent_by_b.hooks()
            ) as b,
        ):
            a.create_item("Shared idea")
            sessions_before = b.sessions()
            a.sign_out()
            me = b.me()
            items = b.list_items()
            sessions_after = b.sessions()

        assert me.email == email
        assert [item.title for item in items] == ["Shared idea"]
        assert len(sessions_before) == 2
        assert [session.current for session in sessions_after] == [True]
        assert sent_by_b["POST /auth/refresh"] == 0
        assert sent_by_b["POST /auth/signin"] == 1

    def test_sign_out_ends_the_session_and_the_next_call_signs_in_again(self, serve):
        """After sign_out the auth holds no session; a later call starts a new one."""
        base_url = serve()
        email = signed_up(base_url)
        sent = Sent()

        with Client(base_url, auth=PasswordAuth(email, PASSWORD), event_hooks=sent.hooks()) as api:
            first = [session.id for session in api.sessions()]
            api.sign_out()
            signed_out = repr(api.auth)
            second = [session.id for session in api.sessions()]

        assert "signed_in=False" in signed_out
        assert len(first) == len(second) == 1
        assert first != second
        assert sent["POST /auth/signin"] == 2

    def test_sign_out_others_keeps_this_session(self, serve):
        """scope="others" ends the other client's session only."""
        base_url = serve()
        email = signed_up(base_url)

        with (
            Client(base_url, auth=PasswordAuth(email, PASSWORD)) as a,
            Client(base_url, auth=PasswordAuth(email, PASSWORD)) as b,
        ):
            a.me()
            b.me()
            a.sign_out(scope="others")
            sessions = a.sessions()

        assert [session.current for session in sessions] == [True]

    def test_change_password_signs_in_with_the_new_one_later(self, serve):
        """After change_password a new sign-in uses the new password."""
        base_url = serve()
        email = signed_up(base_url)
        new_password = "another long passphrase"

        with Client(base_url, auth=PasswordAuth(email, PASSWORD)) as api:
            api.change_password(PASSWORD, new_password)
            api.sign_out()
            me = api.me()

        assert me.email == email

    def test_error_body_raises_api_error(self, serve):
        """A 404 of the API, as ApiError with the code and message of its body."""
        base_url = serve()
        email = signed_up(base_url)

        with (
            Client(base_url, auth=PasswordAuth(email, PASSWORD)) as api,
            pytest.raises(ApiError) as caught,
        ):
            api.delete_item("00000000-0000-0000-0000-000000000000")

        assert (caught.value.status, caught.value.code) == (404, "not_found")

    def test_no_secret_in_a_repr_a_log_line_or_an_error(self, serve, caplog):
        """Password, access token, refresh cookie and CSRF token: in no repr, record or error."""
        caplog.set_level(logging.DEBUG)
        base_url = serve()
        email = signed_up(base_url)
        auth = PasswordAuth(email, PASSWORD)
        wrong = PasswordAuth(email, "a wrong password it is")

        with Client(base_url, auth=auth) as api, Client(base_url, auth=wrong) as refused:
            api.me()
            with pytest.raises(ApiError) as caught:
                refused.me()
            texts = [repr(auth), repr(api), repr(wrong), repr(refused)]
            texts += [str(caught.value), repr(caught.value)]
        secrets = [
            PASSWORD,
            "a wrong password it is",
            auth._access_token,
            auth._csrf_token,
            auth._cookies["sb_refresh_token"],
            auth._cookies["myideas_csrf"],
        ]

        texts += [record.getMessage() for record in caplog.records]
        assert any("/auth/signin" in text for text in texts)  # the calls were logged
        for secret in secrets:
            assert secret
            assert not [text for text in texts if secret in text]
