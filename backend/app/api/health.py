"""GET /health: is this instance able to serve, database included."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter
from sqlalchemy.exc import SQLAlchemyError

from backend.app.api.deps import ServicesDep
from backend.app.core.errors import DatabaseUnavailable

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/health", responses={503: {"description": "`database_unavailable`"}})
async def health(services: ServicesDep) -> dict[str, str]:
    try:
        await services.database.read(lambda conn: conn.execute(sa.text("SELECT 1")))
    except (SQLAlchemyError, OSError) as exc:
        raise DatabaseUnavailable(details={"status": "unavailable", "database": "down"}) from exc
    return {"status": "ok", "database": "ok"}
