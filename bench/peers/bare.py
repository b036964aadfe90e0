"""The bare baseline: a plain `FastAPI()`, no middleware, one route answering the JSON body our
`GET /auth/me` answered (given by the runner in `BENCH_BARE_BODY`), so both sides serialize and
send the same bytes and the difference is everything our app does on top of the framework."""

from __future__ import annotations

import json
import os
from typing import Any

from fastapi import FastAPI

__all__ = ["create_app"]


def create_app() -> FastAPI:
    body: dict[str, Any] = json.loads(os.environ["BENCH_BARE_BODY"])
    app = FastAPI()

    @app.get("/auth/me")
    async def me() -> dict[str, Any]:
        return body

    return app
