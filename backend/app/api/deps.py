"""Dependencies, declared once as `Annotated` aliases; handlers never call `Depends()` inline.

The security dependencies subclass FastAPI's security classes only so that OpenAPI shows the bearer
scheme, the CSRF header and the refresh cookie on the right routes. Their checks are ours: FastAPI's
`HTTPBearer` answers a missing header with a bare 403 "Not authenticated", and a 403 tells a
browser client to give up when it should sign in again. Here it is a 401 with a hint.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPBearer

from backend.app.core.claims import AccessClaims
from backend.app.core.errors import ProviderUnavailable, Unauthorized
from backend.app.core.request_limits import client_address, client_user_agent
from backend.app.core.security import (
    CSRF_HEADER,
    REFRESH_COOKIE,
    extract_bearer_token,
)
from backend.app.core.user_scoped_client import UserScopedClient
from backend.app.identity.sessions import SessionService
from backend.app.identity.tokens import SigningKeysUnavailable, TokenInvalid
from backend.app.services import Services

__all__ = [
    "ClientAddress",
    "CsrfDep",
    "CurrentUser",
    "RefreshCookie",
    "ServicesDep",
    "SessionsDep",
    "UserAgent",
    "UserScopedDep",
    "services_of",
]


# Every dependency here is `async def` although none awaits: FastAPI runs a plain `def`
# dependency in a worker thread, which costs a thread hop per dependency per request.


def services_of(request: Request) -> Services:
    """The app's services, for a dependency that has the request but not `ServicesDep`."""
    services: Services = request.app.state.services
    return services


async def get_services(request: Request) -> Services:
    return services_of(request)


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_sessions(request: Request) -> SessionService:
    return services_of(request).sessions


SessionsDep = Annotated[SessionService, Depends(get_sessions)]


class _BearerAuth(HTTPBearer):
    async def __call__(self, request: Request) -> AccessClaims:  # type: ignore[override]
        token = extract_bearer_token(request)
        try:
            return await services_of(request).identity.verify_access_token(token)
        except TokenInvalid as exc:
            raise Unauthorized(token_was_sent=True) from exc
        except SigningKeysUnavailable as exc:
            # The token cannot be judged right now: a 503 keeps the client signed in, where a
            # 401 would send it to sign in again for nothing.
            raise ProviderUnavailable() from exc


bearer_auth = _BearerAuth(
    scheme_name="BearerAuth",
    bearerFormat="JWT",
    description="The `accessToken` from POST /auth/signin or POST /auth/refresh. Cookies are not "
    "accepted on protected routes.",
)
CurrentUser = Annotated[AccessClaims, Depends(bearer_auth)]


async def get_user_scoped_client(request: Request, user: CurrentUser) -> UserScopedClient:
    # The request, not `ServicesDep`: FastAPI resolves each dependency on every request, and
    # this one is on every data route.
    return UserScopedClient(services_of(request).database, user)


UserScopedDep = Annotated[UserScopedClient, Depends(get_user_scoped_client)]


class _CsrfHeader(APIKeyHeader):
    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        services_of(request).csrf.verify(request)


csrf_header = _CsrfHeader(
    name=CSRF_HEADER,
    scheme_name="CsrfToken",
    description="The `csrfToken` from GET /auth/csrf (or from a signin/refresh body); must match "
    "the HttpOnly CSRF cookie.",
)
CsrfDep = Annotated[None, Depends(csrf_header)]


class _RefreshCookie(APIKeyCookie):
    async def __call__(self, request: Request) -> str | None:  # type: ignore[override]
        return request.cookies.get(REFRESH_COOKIE) or None


refresh_cookie = _RefreshCookie(
    name=REFRESH_COOKIE,
    scheme_name="RefreshCookie",
    description="HttpOnly refresh-token cookie set by POST /auth/signin; rotated on each refresh.",
)
RefreshCookie = Annotated[str | None, Depends(refresh_cookie)]


async def get_client_address(request: Request) -> str:
    trusts_proxies = bool(services_of(request).settings.forwarded_allow_ips)
    return client_address(request, trusts_proxies=trusts_proxies)


ClientAddress = Annotated[str, Depends(get_client_address)]


async def get_user_agent(request: Request) -> str | None:
    return client_user_agent(request)


# What a session opened by the request records as its User-Agent (bounded, control chars out).
UserAgent = Annotated[str | None, Depends(get_user_agent)]
