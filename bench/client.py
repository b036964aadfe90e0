"""The HTTP calls a run makes outside of wrk: sign-ins and tokens before the rounds, checks.

Plain `urllib` with no cookie jar: every cookie a call sends is the one the caller passes, so
sessions never leak into each other. Loopback only.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Answer",
    "Csrf",
    "Session",
    "call",
    "csrf",
    "request_line",
    "sign_in",
    "sign_in_many",
]

# Enough to keep both cores hashing during set-up, not so many that the server queues them.
_SETUP_CONCURRENCY = 8


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    set_cookies: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def expect(self, status: int = 200) -> Answer:
        if self.status != status:
            raise RuntimeError(f"expected {status}, got {self.status}: {self.body[:500]!r}")
        return self


def call(
    method: str,
    url: str,
    *,
    json_body: Any = None,
    form: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """One request; any status is returned, none raised."""
    all_headers = dict(headers or {})
    data = None
    if json_body is not None:
        data = json.dumps(json_body).encode()
        all_headers["Content-Type"] = "application/json"
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
        all_headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(  # noqa: S310 -- loopback URL built by the runner
        url, data=data, headers=all_headers, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 -- loopback
            status, message, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, message, body = error.code, error.headers, error.read()
    cookies = {}
    for header in message.get_all("Set-Cookie") or []:
        name, _, value = header.split(";", 1)[0].partition("=")
        cookies[name.strip()] = value.strip()
    return Answer(status, cookies, body)


@dataclass(frozen=True, slots=True)
class Csrf:
    """A CSRF cookie and its token, as `GET /auth/csrf` hands them out (not yet bound)."""

    cookie: str
    token: str

    def headers(self) -> dict[str, str]:
        return {"Cookie": f"myideas_csrf={self.cookie}", "X-CSRF-Token": self.token}


@dataclass(frozen=True, slots=True)
class Session:
    """What a browser holds after signing in: the access token, the refresh cookie, and the
    CSRF cookie bound to it with its token."""

    access_token: str
    refresh_token: str
    csrf: Csrf


def csrf(base: str) -> Csrf:
    answer = call("GET", f"{base}/auth/csrf").expect()
    return Csrf(cookie=answer.set_cookies["myideas_csrf"], token=answer.json()["csrfToken"])


def sign_in(base: str, email: str, password: str, pair: Csrf) -> Session:
    answer = call(
        "POST",
        f"{base}/auth/signin",
        json_body={"email": email, "password": password},
        headers=pair.headers(),
    ).expect()
    body = answer.json()
    return Session(
        access_token=body["accessToken"],
        refresh_token=answer.set_cookies["sb_refresh_token"],
        csrf=Csrf(cookie=answer.set_cookies["myideas_csrf"], token=body["csrfToken"]),
    )


def sign_in_many(base: str, emails: Sequence[str], password: str) -> list[Session]:
    """One new session per email, a few sign-ins at a time."""
    pair = csrf(base)
    with ThreadPoolExecutor(_SETUP_CONCURRENCY) as pool:
        return list(pool.map(lambda email: sign_in(base, email, password, pair), emails))


def request_line(
    method: str, path: str, *, body: Any = None, headers: Mapping[str, str] | None = None
) -> str:
    """One request for `bench/lua/rotate.lua`: tab-separated method, path, body, headers."""
    all_headers = dict(headers or {})
    text = ""
    if body is not None:
        text = json.dumps(body)
        all_headers["Content-Type"] = "application/json"
    fields = [method, path, text, *(f"{name}: {value}" for name, value in all_headers.items())]
    if any("\t" in field or "\n" in field for field in fields):
        raise ValueError("a request field holds a tab or a newline")
    return "\t".join(fields)


def write_lines(path: Path, lines: Iterable[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path
