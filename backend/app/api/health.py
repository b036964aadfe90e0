"""GET /health: can this instance serve, and which dependency is down if not."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from backend.app.api.deps import ServicesDep
from backend.app.api.errors import database_unavailable_response
from backend.app.api.models import HealthOut
from backend.app.db.engine import DatabaseUnavailable

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthOut,
    responses={503: {"description": "`database_unavailable`; `details` says which dependency"}},
)
async def health(services: ServicesDep) -> HealthOut | JSONResponse:
    """`database` is `ok` or the answer is 503. `rateLimitStore` is `ok`, `not_configured` or
    `down`: without Redis, sign-in still works, counted in this process (`degraded`)."""
    rate_limit_store = await services.rate_limiter.shared_store_status()
    try:
        await services.database.read(lambda conn: conn.execute(sa.text("SELECT 1")))
    except DatabaseUnavailable as exc:
        return database_unavailable_response(
            exc, {"database": "down", "rateLimitStore": rate_limit_store}
        )
    return HealthOut(
        status="degraded" if rate_limit_store == "down" else "ok",
        database="ok",
        rate_limit_store=rate_limit_store,
    )
