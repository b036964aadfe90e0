"""The application factory. `app = create_app()` is what `uvicorn backend.app.main:app` serves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from backend.app.api import auth, gotrue, health, items
from backend.app.api.errors import install_error_handlers
from backend.app.core.cors import PrefixCORSMiddleware, cors_options
from backend.app.core.logging import install_redaction
from backend.app.core.request_limits import RequestLimitsMiddleware
from backend.app.core.settings import Settings, get_settings
from backend.app.services import Services, start_services

__all__ = ["app", "create_app"]

_DESCRIPTION = """
Authentication backend of the My Ideas app.

**Hybrid token model**: `POST /auth/signin` returns a short-lived `accessToken` in JSON (keep it in
memory; send it as `Authorization: Bearer`), and sets the long-lived refresh token in the HttpOnly
`sb_refresh_token` cookie. `POST /auth/refresh` (the boot call after a page reload) rotates the
cookie and returns a new access token. Every state-changing `/auth` call needs `X-CSRF-Token`
from `GET /auth/csrf`. Every error is `{code, message, details}`.
"""


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> FastAPI:
    """Build one app instance; its services start in the lifespan and close with it.

    Args:
        services: already started services to use instead (a test's own provider, say); the
            caller keeps them and closes them.
    """
    settings = services.settings if services else settings or get_settings()
    install_redaction()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if services is not None:
            app.state.services = services
            yield
            return
        app.state.services = await start_services(settings)
        try:
            yield
        finally:
            await app.state.services.close()

    # Swagger UI and ReDoc from the app's own files (fastapi-offline), not a CDN: /docs and
    # /redoc render on a machine with no network, and the page loads no third-party script.
    app = FastAPIOffline(
        title="My Ideas auth",
        version="0.1.0",
        description=_DESCRIPTION,
        lifespan=lifespan,
    )
    # Added first, so it runs inside CORS: a browser can read the 431 and see why.
    app.add_middleware(
        RequestLimitsMiddleware,
        max_body_bytes=settings.max_body_bytes,
        render_refusal=gotrue.request_limit_refusal if settings.gotrue_api_enabled else None,
    )
    app.add_middleware(
        PrefixCORSMiddleware,  # type: ignore[arg-type]  # mypy cannot match its **options
        **cors_options(settings.cors_origins, gotrue_api=settings.gotrue_api_enabled),
    )
    # FastAPI's body limit, set per route (not on the app, whose limiter sits outside the error
    # handlers and would answer a plain-text 413): a body that grows past it while being read is
    # a 413 with the error body. A larger declared Content-Length is refused earlier, above.
    routers = [auth.router, items.router, health.router, gotrue.jwks_router]
    if settings.gotrue_api_enabled:
        routers.append(gotrue.router)
    for router in routers:
        app.include_router(router, max_body_size=settings.max_body_bytes)
    install_error_handlers(app, routes=[route for router in routers for route in router.routes])
    if settings.gotrue_api_enabled:
        # After the app's handlers, which it keeps for every path outside /auth/v1.
        gotrue.install_gotrue_error_handlers(app, routes=gotrue.router.routes)
    return app


app = create_app()
