"""`PasswordAuth`: the API's hybrid token model as an httpx auth flow.

    client = httpx.Client(base_url=url, auth=PasswordAuth(email, password))

The first request signs in (`GET /auth/csrf`, then `POST /auth/signin` with `X-CSRF-Token`) and
every request carries `Authorization: Bearer <accessToken>`. A 401 refreshes once through the
refresh cookie (`POST /auth/refresh`, with the CSRF token) and sends the request again; only a
refused refresh signs in again. Requests that meet an expired token at the same time share one
refresh (a lock per flavour, as httpx's own docs advise for auth that does I/O): the second to
take the lock sees that the token it sent is no longer the current one and just retries.

The session (access token, CSRF token, refresh and CSRF cookies) lives in this object's memory
only, in a cookie jar of its own, so two instances share nothing and a client's other cookies
never decide which session is refreshed (httpx also files every `Set-Cookie` in the client's own
jar; this flow never reads that copy). `POST /auth/logout` through a client with this auth
carries that session, and ends it here too when the server clears the refresh cookie.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator, Generator
from typing import Any, TypeVar

import anyio
import httpx

from backend.app.client.errors import ApiError
from backend.app.core.errors import ErrorCode
from backend.app.core.security import CSRF_HEADER, REFRESH_COOKIE

__all__ = ["PasswordAuth"]

T = TypeVar("T")
# A step of the flow: yield a request, receive its response (its body already read).
Exchange = Generator[httpx.Request, httpx.Response, T]
Flow = Exchange[None]

_CSRF_REFUSALS = {ErrorCode.CSRF_MISSING.value, ErrorCode.CSRF_MISMATCH.value}


class PasswordAuth(httpx.Auth):
    """Email and password auth for the My Ideas API (see the module docstring).

    Args:
        email: the account's email address.
        password: its password; kept in memory only, never in a repr, log line or error.

    Raises (from the request that needed it):
        ApiError: the sign-in was refused (`auth_invalid_credentials`, `rate_limited`…), or a
            refresh failed for another reason than a dead session (`provider_unavailable`).
    """

    # A request that is retried after a refresh is sent twice: its body must be in memory.
    requires_request_body = True

    def __init__(self, email: str, password: str) -> None:
        self.email = email
        self._password = password
        self._access_token: str | None = None
        self._csrf_token: str | None = None
        self._cookies = httpx.Cookies()
        self._sync_lock = threading.Lock()
        self._async_lock = anyio.Lock()

    def __repr__(self) -> str:
        signed_in = self._access_token is not None
        return f"PasswordAuth(email={self.email!r}, signed_in={signed_in})"

    def use_password(self, password: str) -> None:
        """Sign in with `password` from now on (after the account's password changed)."""
        self._password = password

    # The two flavours drive the one flow below; they differ in their lock and how they read.

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        request.read()
        flow = self._flow(request)
        reply: httpx.Response | None = None
        while (step := _advance(flow, reply)) is not None:
            if isinstance(step, httpx.Request):
                reply = yield step
                continue
            with self._sync_lock:
                reply = None
                while (inner := _advance(step, reply)) is not None:
                    reply = yield inner
                    reply.read()

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await request.aread()
        flow = self._flow(request)
        reply: httpx.Response | None = None
        while (step := _advance(flow, reply)) is not None:
            if isinstance(step, httpx.Request):
                reply = yield step
                continue
            async with self._async_lock:
                reply = None
                while (inner := _advance(step, reply)) is not None:
                    reply = yield inner
                    await reply.aread()

    def _flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request | Flow, httpx.Response | None, None]:
        """The request's own steps: a request to send as it is, or a flow of the session's to
        run under the lock (the reply to it is that flow's last response)."""
        if _is_sign_out(request):
            yield self._sign_out(request)
            return
        yield self._signed_in(request)
        sent = self._access_token
        response = yield _with_bearer(request, sent)
        if response is not None and response.status_code == 401:
            yield self._renewed(request, stale=sent)
            yield _with_bearer(request, self._access_token)

    def _signed_in(self, origin: httpx.Request) -> Flow:
        if self._access_token is None:
            yield from self._sign_in(origin)

    def _renewed(self, origin: httpx.Request, *, stale: str | None) -> Flow:
        if self._access_token != stale:
            return  # renewed by another request while this one waited for the lock
        if self._cookies.get(REFRESH_COOKIE) is not None:
            response = yield from self._with_csrf(_build(origin, "POST", "/auth/refresh"))
            if response.status_code == 200:
                self._accept(response)
                return
            # 503 provider_unavailable or 429 say nothing about the session: no new sign-in.
            if response.status_code != 401:
                raise ApiError.from_response(response)
        yield from self._sign_in(origin)

    def _sign_in(self, origin: httpx.Request) -> Flow:
        self._forget()
        body = {"email": self.email, "password": self._password}
        response = yield from self._with_csrf(_build(origin, "POST", "/auth/signin", json=body))
        if response.status_code != 200:
            raise ApiError.from_response(response)
        self._accept(response)

    def _sign_out(self, request: httpx.Request) -> Flow:
        response = yield from self._with_csrf(request)
        # The server clears the refresh cookie unless `scope` was `others`: then so do we.
        if response.status_code == 200 and self._cookies.get(REFRESH_COOKIE) is None:
            self._forget()

    def _with_csrf(self, request: httpx.Request) -> Exchange[httpx.Response]:
        """Send a state-changing /auth request with the session's cookies and CSRF token; a
        `csrf_*` refusal fetches the token that fits the cookies and tries once more."""
        response = yield from self._csrf_attempt(request)
        if response.status_code == 403 and _code(response) in _CSRF_REFUSALS:
            self._csrf_token = None
            response = yield from self._csrf_attempt(request)
        return response

    def _csrf_attempt(self, request: httpx.Request) -> Exchange[httpx.Response]:
        if self._csrf_token is None:
            csrf = yield from self._exchange(_build(request, "GET", "/auth/csrf"))
            if csrf.status_code != 200:
                raise ApiError.from_response(csrf)
            self._csrf_token = str(csrf.json()["csrfToken"])
        request.headers[CSRF_HEADER] = self._csrf_token
        return (yield from self._exchange(request))

    def _exchange(self, request: httpx.Request) -> Exchange[httpx.Response]:
        # The session's cookies, not the client's: they may hold another session's copies.
        request.headers.pop("Cookie", None)
        self._cookies.set_cookie_header(request)
        response = yield request
        self._cookies.extract_cookies(response)
        return response

    def _accept(self, response: httpx.Response) -> None:
        body = response.json()
        self._access_token = str(body["accessToken"])
        self._csrf_token = str(body["csrfToken"])

    def _forget(self) -> None:
        self._access_token = None
        self._csrf_token = None
        self._cookies = httpx.Cookies()


def _advance(flow: Generator[T, Any, None], reply: Any) -> T | None:
    """The flow's next step after `reply` (None to start it), or None when it has ended."""
    try:
        return flow.send(reply)
    except StopIteration:
        return None


def _is_sign_out(request: httpx.Request) -> bool:
    return request.method == "POST" and request.url.path.endswith("/auth/logout")


def _with_bearer(request: httpx.Request, token: str | None) -> httpx.Request:
    request.headers["Authorization"] = f"Bearer {token}"
    return request


def _build(origin: httpx.Request, method: str, path: str, *, json: Any = None) -> httpx.Request:
    """A request of the session's to the API that `origin` goes to, with its agent and timeout
    (the server records the agent of each session)."""
    headers = {"User-Agent": origin.headers["User-Agent"]} if "User-Agent" in origin.headers else {}
    extensions = {k: v for k, v in origin.extensions.items() if k == "timeout"}
    return httpx.Request(
        method, origin.url.join(path), json=json, headers=headers, extensions=extensions
    )


def _code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None
