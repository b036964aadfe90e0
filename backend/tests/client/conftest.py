"""A live API on loopback for the Python client, and a counter of what its clients send."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from backend.app.main import create_app
from backend.tests.live_server import live_server


@pytest.fixture
def serve(make_settings: Callable[..., Any]) -> Iterator[Callable[..., str]]:
    """Factory: `serve(**setting_overrides)` starts the API on loopback; returns its URL."""
    with ExitStack() as stack:

        def start(**overrides: Any) -> str:
            app = create_app(make_settings(**overrides))
            return stack.enter_context(live_server(app, log_level="warning"))

        yield start


class Sent(Counter[str]):
    """`sent["POST /auth/refresh"]`: how many such requests a client sent (an event hook)."""

    def record(self, request: httpx.Request) -> None:
        self[f"{request.method} {request.url.path}"] += 1

    async def arecord(self, request: httpx.Request) -> None:
        self.record(request)

    def hooks(self) -> dict[str, list[Callable[..., Any]]]:
        return {"request": [self.record]}

    def async_hooks(self) -> dict[str, list[Callable[..., Any]]]:
        return {"request": [self.arecord]}


@pytest.fixture
def sent() -> Callable[[], Sent]:
    """Factory of request counters, one per client."""
    return Sent
