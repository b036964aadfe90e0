"""Who may call `/auth/v1`: the gateway's `apikey` check, GoTrue's bearer and admin checks.

Supabase's gateway (Kong `key-auth`) refuses a request whose `apikey` header is missing or unknown
before GoTrue sees it; GoTrue then authenticates the bearer where a route needs one. Both live here,
as `Annotated` dependencies the routes declare:

- `ApiKey`: every route but the JWKS. Public routes authenticate the caller by this header
  *only*: supabase-py sends a stale user token in `Authorization` there (docs/gotrue-api.md §7).
- `SignedIn`: `GET/PUT /user`, `/logout`: a user's access token whose session still exists,
  of a user who is not banned.
- `Admin`: `/admin/*`: the service-role key as the bearer, or (as GoTrue does for projects on
  legacy keys) an HS256 JWT signed with `SUPABASE_JWT_SECRET` whose `role` is an admin role.

The keys are compared in constant time and never logged, echoed or put in an error message.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from typing import Annotated, Literal

import jwt
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPBearer

from backend.app.api.deps import services_of
from backend.app.core.claims import AccessClaims
from backend.app.core.settings import Settings
from backend.app.identity.embedded import EmbeddedGoTrue, UserRecord
from backend.app.identity.tokens import SigningKeysUnavailable, TokenInvalid
from backend.app.services import Services

from .errors import (
    GoTrueCode,
    GoTrueError,
    invalid_api_key,
    no_api_key,
    translate_app_errors,
    user_banned,
)

__all__ = ["Admin", "ApiKey", "Config", "GoTrueDep", "SignedIn", "SignedInUser"]

# GoTrue's JWT_ADMIN_ROLES default.
ADMIN_ROLES = frozenset({"service_role", "supabase_admin"})
# GoTrue's `bearerRegexp`.
_BEARER = re.compile(r"^(?:B|b)earer (\S+)$")

KeyRole = Literal["anon", "service_role"]


def _same(given: str, expected: str | None) -> bool:
    return expected is not None and hmac.compare_digest(given.encode(), expected.encode())


def _keys(services: Services) -> tuple[str | None, str | None]:
    settings = services.settings
    anon, service = settings.supabase_anon_key, settings.supabase_service_role_key
    return (
        anon.get_secret_value() if anon else None,
        service.get_secret_value() if service else None,
    )


class _ApiKeyHeader(APIKeyHeader):
    async def __call__(self, request: Request) -> KeyRole:  # type: ignore[override]
        given = request.headers.get("apikey")
        if not given:
            raise no_api_key()
        anon, service = _keys(services_of(request))
        if _same(given, service):
            return "service_role"
        if _same(given, anon):
            return "anon"
        raise invalid_api_key()


api_key_header = _ApiKeyHeader(
    name="apikey",
    scheme_name="SupabaseApiKey",
    description="`SUPABASE_ANON_KEY` or `SUPABASE_SERVICE_ROLE_KEY`, as Supabase's gateway wants.",
)
ApiKey = Annotated[KeyRole, Depends(api_key_header)]


def _gotrue(services: Services) -> EmbeddedGoTrue:
    if services.gotrue is None:  # the routes are only mounted when it is there
        raise RuntimeError("GOTRUE_API_ENABLED needs AUTH_PROVIDER=embedded")
    return services.gotrue


async def get_gotrue(request: Request) -> EmbeddedGoTrue:
    return _gotrue(services_of(request))


GoTrueDep = Annotated[EmbeddedGoTrue, Depends(get_gotrue)]


async def get_config(request: Request) -> Settings:
    return services_of(request).settings


# The app's settings: GoTrue's switches (sign-up disabled, autoconfirm) and where links lead.
Config = Annotated[Settings, Depends(get_config)]


def _bearer(request: Request) -> str:
    match = _BEARER.match(request.headers.get("authorization", ""))
    if match is None:
        raise GoTrueError(
            401, GoTrueCode.NO_AUTHORIZATION, "This endpoint requires a valid Bearer token"
        )
    return match.group(1)


def _bad_jwt(reason: str) -> GoTrueError:
    return GoTrueError(
        403,
        GoTrueCode.BAD_JWT,
        f"invalid JWT: unable to parse or verify signature, {reason}",
    )


@dataclass(frozen=True, slots=True)
class SignedInUser:
    claims: AccessClaims
    user: UserRecord


async def _verified(gotrue: EmbeddedGoTrue, token: str) -> AccessClaims:
    try:
        return await gotrue.verify_access_token(token)
    except (TokenInvalid, SigningKeysUnavailable) as exc:
        raise _bad_jwt(str(exc) or "token is invalid") from exc


async def _live(gotrue: EmbeddedGoTrue, claims: AccessClaims) -> UserRecord:
    """GoTrue's `maybeLoadUserOrSession`: the user, then the session, must still exist."""
    with translate_app_errors():
        state = await gotrue.session_user(claims)
    if state.user is None:
        raise GoTrueError(
            403, GoTrueCode.USER_NOT_FOUND, "User from sub claim in JWT does not exist"
        )
    if not state.session_alive:
        raise GoTrueError(
            403,
            GoTrueCode.SESSION_NOT_FOUND,
            "Session from session_id claim in JWT does not exist",
        )
    if state.banned:  # a token issued before the ban (GoTrue `requireAuthentication`)
        raise user_banned()
    return state.user


class _UserBearer(HTTPBearer):
    async def __call__(self, request: Request) -> SignedInUser:  # type: ignore[override]
        gotrue = _gotrue(services_of(request))
        claims = await _verified(gotrue, _bearer(request))
        return SignedInUser(claims=claims, user=await _live(gotrue, claims))


user_bearer = _UserBearer(
    scheme_name="GoTrueUserToken",
    bearerFormat="JWT",
    description="A user's `access_token` from `POST /auth/v1/token` (or `/auth/signin`).",
)


async def _signed_in(
    _key: ApiKey, user: Annotated[SignedInUser, Depends(user_bearer)]
) -> SignedInUser:
    return user


SignedIn = Annotated[SignedInUser, Depends(_signed_in)]


class _AdminBearer(HTTPBearer):
    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        services = services_of(request)
        token = _bearer(request)
        anon, service = _keys(services)
        if _same(token, service):
            return
        if _same(token, anon):
            raise _not_admin()
        secret = services.settings.supabase_jwt_secret
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise _bad_jwt(type(exc).__name__) from exc
        if header.get("alg") == "HS256" and secret is not None:
            try:
                claims = jwt.decode(
                    token,
                    secret.get_secret_value(),
                    algorithms=["HS256"],
                    options={"verify_aud": False},
                )
            except jwt.PyJWTError as exc:
                raise _bad_jwt(type(exc).__name__) from exc
            if claims.get("role") not in ADMIN_ROLES:
                raise _not_admin()
            return
        # Anything else must be a token of ours: a user's, whose session is checked first
        # (GoTrue `requireAdminCredentials`), and which is never an admin's.
        gotrue = _gotrue(services)
        user_claims = await _verified(gotrue, token)
        await _live(gotrue, user_claims)
        if user_claims.raw.get("role") not in ADMIN_ROLES:
            raise _not_admin()


def _not_admin() -> GoTrueError:
    return GoTrueError(403, GoTrueCode.NOT_ADMIN, "User not allowed")


admin_bearer = _AdminBearer(
    scheme_name="GoTrueServiceRole",
    description="`SUPABASE_SERVICE_ROLE_KEY`, or a `service_role` JWT signed with "
    "`SUPABASE_JWT_SECRET`.",
)


async def _admin(_key: ApiKey, _admin: Annotated[None, Depends(admin_bearer)]) -> None:
    return None


Admin = Annotated[None, Depends(_admin)]
