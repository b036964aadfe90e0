"""Our app as the benchmark serves it: the real `create_app`, limits raised, two routes added.

uvicorn starts it like every other server of the run (`bench.servers`):
`uvicorn --factory bench.server:create_app`, configured by the environment the runner sets:
`BENCH_DATABASE_URL`, `BENCH_DATA_DIR`.

What differs from production, and why:
- Every rate limit is raised (`RAISED_LIMITS`): the scenarios sign in thousands of times from one
  address; the limits are not what is measured. The results say so.
- `GET /bench/protected` (our `CurrentUser` dependency, returns the caller's id) and
  `GET /bench/public` (the same route without it, a fixed id): the cost of the auth layer alone,
  on the same server. Added after the app's routes, so no other route is matched later.
- The answer to `POST /auth/refresh` also carries `X-Bench-Cookies`, its Set-Cookie values in one
  header: wrk's Lua keeps one value per header name, so it would see only the last of the two
  Set-Cookie headers, and the refresh script needs both (`bench/lua/refresh.lua`). Every other
  request passes through the wrapper untouched (one comparison of the path).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.app.api.deps import CurrentUser
from backend.app.core.settings import Settings
from backend.app.main import create_app as create_our_app

__all__ = ["PUBLIC_ID", "RAISED_LIMITS", "create_app"]

RAISED_LIMIT = "1000000/minute"
# Every `rate_limit_*` setting the app has, found by name, so a limit added later is raised too.
RAISED_LIMITS: dict[str, Any] = {
    name: RAISED_LIMIT for name in Settings.model_fields if name.startswith("rate_limit_")
}
PUBLIC_ID = "00000000-0000-4000-8000-000000000000"
COOKIE_ECHO_HEADER = b"x-bench-cookies"
_REFRESH_PATH = "/auth/refresh"


def add_bench_routes(app: FastAPI) -> None:
    @app.get("/bench/protected", include_in_schema=False)
    async def protected(claims: CurrentUser) -> dict[str, str]:
        return {"id": claims.user_id}

    @app.get("/bench/public", include_in_schema=False)
    async def public() -> dict[str, str]:
        return {"id": PUBLIC_ID}


def echo_refresh_cookies(app: ASGIApp) -> ASGIApp:
    """Repeat the Set-Cookie values of a refresh answer in one header (see the module doc)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != _REFRESH_PATH:
            await app(scope, receive, send)
            return

        async def send_with_echo(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                cookies = [
                    value.split(b";", 1)[0] for name, value in headers if name == b"set-cookie"
                ]
                headers.append((COOKIE_ECHO_HEADER, b"; ".join(cookies)))
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, send_with_echo)

    return wrapped


def create_app() -> ASGIApp:
    settings = Settings(
        _env_file=None,
        data_dir=Path(os.environ["BENCH_DATA_DIR"]),
        database_url=os.environ["BENCH_DATABASE_URL"],
        redis_url=None,
        **RAISED_LIMITS,
    )
    app = create_our_app(settings)
    add_bench_routes(app)
    return echo_refresh_cookies(app)
