"""`GET /auth/v1/.well-known/jwks.json`: served always, open (no `apikey`), as GoTrue's gateway
leaves it open, so any verifier (supabase-js `getClaims`, another instance) can fetch the keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from backend.app.api.deps import ServicesDep
from backend.app.core.errors import NotFound

__all__ = ["router"]

router = APIRouter(prefix="/auth/v1", tags=["gotrue"])


@router.get("/.well-known/jwks.json")
async def jwks(services: ServicesDep, response: Response) -> dict[str, Any]:
    """The public keys that verify access tokens (GoTrue's path and caching, `jwks.go`)."""
    if services.signer is None:
        raise NotFound("This app signs no tokens; its provider publishes the keys")
    response.headers["Cache-Control"] = "public, max-age=600"
    return services.signer.jwks()
