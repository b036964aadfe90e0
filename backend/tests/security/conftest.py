"""The attack suite's harness: every test runs with every logger at DEBUG, and no secret that its
HTTP traffic carried (ASVS 5.0 V16.2.5) may appear in any log record it produced.

Secrets are collected from the traffic itself, whichever client a test uses: passwords in request
bodies, bearer tokens, CSRF tokens and cookie values in requests, and access tokens, CSRF tokens
and Set-Cookie values in responses.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pytest

from backend.app.core.logging import JsonFormatter
from backend.app.identity.passwords import is_common_password

# Shorter values (a 7-character password of a policy test) could occur in a log line by chance.
_MIN_SECRET_LENGTH = 8
_SECRET_FIELDS = ("password", "accessToken", "csrfToken", "refresh_token", "access_token")


class SecretCollector:
    def __init__(self) -> None:
        self.secrets: set[str] = set()

    def add(self, value: object) -> None:
        if isinstance(value, str) and len(value) >= _MIN_SECRET_LENGTH and not value.isdigit():
            self.secrets.add(value)

    def request(self, request: httpx.Request) -> None:
        authorization = request.headers.get("authorization", "")
        self.add(authorization.partition(" ")[2])
        self.add(request.headers.get("x-csrf-token"))
        for pair in request.headers.get("cookie", "").split(";"):
            self.add(pair.partition("=")[2].strip())
        self._json(request.content)

    def response(self, response: httpx.Response) -> None:
        for header in response.headers.get_list("set-cookie"):
            cookie: SimpleCookie = SimpleCookie()
            cookie.load(header)
            for morsel in cookie.values():
                self.add(morsel.value)
        self._json(response.content)

    def _json(self, content: bytes) -> None:
        try:
            body = json.loads(content)
        except ValueError:
            return
        if isinstance(body, dict):
            for field in _SECRET_FIELDS:
                value = body.get(field)
                # A refused common password is a dictionary word that any log line may contain.
                if not (field == "password" and is_common_password(str(value))):
                    self.add(value)


def log_text(records: list[logging.LogRecord]) -> str:
    """Every record as an operator would see it: message, `extra` fields and traceback."""
    formatter = JsonFormatter()
    return "\n".join(formatter.format(record) for record in records)


@pytest.fixture(autouse=True)
def no_secret_in_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> Iterator[SecretCollector]:
    """Capture at DEBUG; after the test, no secret seen on the wire is in any record."""
    collector = SecretCollector()
    async_send = httpx.AsyncClient.send
    sync_send = httpx.Client.send

    async def send_async(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> Any:
        collector.request(request)
        response = await async_send(self, request, **kwargs)
        collector.response(response)
        return response

    def send_sync(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> Any:
        collector.request(request)
        response = sync_send(self, request, **kwargs)
        collector.response(response)
        return response

    monkeypatch.setattr(httpx.AsyncClient, "send", send_async)
    monkeypatch.setattr(httpx.Client, "send", send_sync)
    caplog.set_level(logging.DEBUG)
    yield collector
    text = log_text(caplog.records)
    leaked = sorted(secret for secret in collector.secrets if secret in text)
    assert not leaked, f"{len(leaked)} secret(s) of this test's traffic are in its logs"


def security_events(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "backend.app.security" and getattr(record, "event", None) == event
    ]


JWT_SHAPE = re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*")
