"""GoTrue's HTTP API, served by the embedded provider under `/auth/v1` (`GOTRUE_API_ENABLED`).

Bodies, statuses and error codes are GoTrue's (`docs/gotrue-api.md` §2 to §4; each route names
its upstream file), so supabase-js and supabase-py work against it unchanged. It shares everything
with `/auth`: the user store, the sessions and their refresh-token rotation and reuse rule, the
sign-in rate limits, and the lifecycle's tokens and mail outbox (`lifecycle.py`).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from backend.app.api.deps import ClientAddress, SessionsDep
from backend.app.core.request_limits import client_user_agent
from backend.app.identity.base import SignOutScope
from backend.app.identity.emails import email_key
from backend.app.identity.embedded import (
    BadCodeVerifier,
    FlowStateExpired,
    FlowStateNotFound,
    GoTrueSession,
    NonceInvalid,
    NonceRequired,
    Unconfirmed,
)
from backend.app.identity.passwords import MAX_PASSWORD_LENGTH

from . import disabled, lifecycle
from .callers import Admin, ApiKey, Config, GoTrueDep, SignedIn
from .durations import DurationInvalid, parse_go_duration
from .errors import (
    GoTrueCode,
    GoTrueError,
    GoTrueOAuthError,
    bad_request,
    email_exists,
    email_rate_limited,
    phone_disabled,
    translate_app_errors,
    user_banned,
    validation_failed,
)
from .links import verify_links
from .schemas import (
    AdminCreateBody,
    AdminDeleteBody,
    AdminUpdateBody,
    PasswordGrantBody,
    PkceGrantBody,
    RefreshGrantBody,
    SignUpBody,
    UserUpdateBody,
    checked_email,
    code_challenge,
    openapi_body,
    parse_json_object,
    read_body,
    session_json,
    user_json,
)

__all__ = ["router"]

router = APIRouter(prefix="/auth/v1", tags=["gotrue"])

# GoTrue's pagination (`pagination.go`; a page size under 1 is the ORM's default, 20). The cap is
# this server's: one request should not serialize every user.
_DEFAULT_PER_PAGE = 50
_ORM_DEFAULT_PER_PAGE = 20
_MAX_PER_PAGE = 1000
_MAX_PAGE = 2**31 - 1
# GoTrue's `legacyRefreshTokenPattern` length: anything shorter is malformed.
_MIN_REFRESH_TOKEN_LENGTH = 12
# GoTrue's `ProviderSettings`: every one off here but email.
_OFF_PROVIDERS = (
    *("anonymous_users", "apple", "azure", "bitbucket", "discord", "facebook", "snapchat"),
    *("figma", "fly", "github", "gitlab", "google", "keycloak", "kakao", "linkedin"),
    *("linkedin_oidc", "notion", "spotify", "slack", "slack_oidc", "workos", "twitch"),
    *("twitter", "phone", "zoom"),
)
_LOGOUT_SCOPES = {
    "": SignOutScope.GLOBAL,
    "global": SignOutScope.GLOBAL,
    "local": SignOutScope.LOCAL,
    "others": SignOutScope.OTHERS,
}


def signup_disabled() -> GoTrueError:
    return GoTrueError(422, GoTrueCode.SIGNUP_DISABLED, "Signups not allowed for this instance")


@router.post("/signup", openapi_extra=openapi_body(SignUpBody))
async def sign_up(
    request: Request,
    _key: ApiKey,
    sessions: SessionsDep,
    address: ClientAddress,
    config: Config,
) -> dict[str, Any]:
    """GoTrue `signup.go`: 200, `data` becomes `user_metadata`. Autoconfirm: a session.
    EMAIL_CONFIRMATION_REQUIRED: the bare user with `confirmation_sent_at`, and a mail (a PKCE
    link with `code_challenge`)."""
    body = await read_body(request, SignUpBody)
    if not body.email and not body.phone:  # GoTrue's anonymous sign-in (`api.go`), off
        raise GoTrueError(
            422, GoTrueCode.ANONYMOUS_PROVIDER_DISABLED, "Anonymous sign-ins are disabled"
        )
    if config.gotrue_disable_signup:  # `signup.go`: before any other check of the body
        raise signup_disabled()
    if body.phone and not body.email:
        raise phone_disabled("signups")
    if not body.password:
        raise validation_failed("Signup requires a valid password")
    email = checked_email(body.email)
    challenge = code_challenge(body)
    with translate_app_errors():
        answer = await sessions.gotrue_sign_up(
            email=email,
            password=body.password,
            user_metadata=body.data or {},
            address=address,
            links=verify_links(request, config),
            user_agent=client_user_agent(request),
            challenge=challenge,
        )
    if isinstance(answer, Unconfirmed):
        return user_json(
            answer.user,
            confirmation_sent_at=answer.confirmation_sent_at,
            identities=not answer.obfuscated,
        )
    return session_json(answer.session, answer.user)


@router.post("/token", openapi_extra=openapi_body(PasswordGrantBody))
async def token(
    request: Request,
    _key: ApiKey,
    sessions: SessionsDep,
    address: ClientAddress,
) -> dict[str, Any]:
    """GoTrue `token.go`: `grant_type=password`, `refresh_token` or `pkce` (query parameter).
    They keep `/auth`'s rules: the same rate limits and security events (`SessionService`)."""
    grant_type = request.query_params.get("grant_type", "")
    with translate_app_errors(banned=_BANNED_AT_GRANT.get(grant_type)):
        if grant_type == "password":
            answer = await _password_grant(request, sessions, address)
        elif grant_type == "refresh_token":
            body = await read_body(request, RefreshGrantBody)
            if not body.refresh_token:
                raise GoTrueOAuthError("refresh_token required")
            if len(body.refresh_token) < _MIN_REFRESH_TOKEN_LENGTH:
                raise validation_failed("Refresh token is not valid")
            answer = await sessions.gotrue_refresh(
                refresh_token=body.refresh_token, address=address
            )
        elif grant_type == "pkce":
            answer = await _pkce_grant(request, sessions, address)
        elif grant_type == "id_token":
            disabled.id_token_grant(parse_json_object(await request.body()))
        elif grant_type == "web3":
            disabled.web3_grant()
        else:
            raise bad_request(GoTrueCode.INVALID_CREDENTIALS, "unsupported_grant_type")
    return session_json(answer.session, answer.user)


# GoTrue's words for a banned user at each grant (`token.go`, `tokens/service.go`): 400 both.
_BANNED_AT_GRANT = {
    "password": lambda: user_banned(status=400),
    "refresh_token": lambda: user_banned("Invalid Refresh Token: User Banned", status=400),
}


async def _password_grant(request: Request, sessions: SessionsDep, address: str) -> GoTrueSession:
    body = await read_body(request, PasswordGrantBody)
    if not body.email:
        if body.phone:
            raise phone_disabled("logins")
        raise validation_failed("missing email or phone")
    password = body.password or ""
    if len(password) > MAX_PASSWORD_LENGTH:
        # No account has such a password, and argon2 is not made to hash a quarter megabyte: it
        # is checked as the empty one, which no account has either, so it still counts as an
        # attempt and fails as a wrong password does.
        password = ""
    return await sessions.gotrue_sign_in(
        email=body.email,
        password=password,
        address=address,
        user_agent=client_user_agent(request),
    )


async def _pkce_grant(request: Request, sessions: SessionsDep, address: str) -> GoTrueSession:
    """GoTrue `token.go` `PKCE`: its statuses, codes and messages."""
    body = await read_body(request, PkceGrantBody)
    if not body.auth_code or not body.code_verifier:
        raise validation_failed(
            "invalid request: both auth code and code verifier should be non-empty"
        )
    try:
        return await sessions.gotrue_exchange_code(
            auth_code=body.auth_code,
            code_verifier=body.code_verifier,
            address=address,
            user_agent=client_user_agent(request),
        )
    except FlowStateNotFound as exc:
        raise GoTrueError(404, GoTrueCode.FLOW_STATE_NOT_FOUND, exc.message) from None
    except FlowStateExpired as exc:
        raise GoTrueError(422, GoTrueCode.FLOW_STATE_EXPIRED, exc.message) from None
    except BadCodeVerifier as exc:
        raise bad_request(GoTrueCode.BAD_CODE_VERIFIER, exc.message) from None


@router.get("/user")
async def get_user(caller: SignedIn) -> dict[str, Any]:
    """GoTrue `user.go` `UserGet`: the bare user of a token whose session still exists."""
    return user_json(caller.user)


@router.put("/user", openapi_extra=openapi_body(UserUpdateBody))
async def update_user(
    request: Request,
    caller: SignedIn,
    config: Config,
    sessions: SessionsDep,
    address: ClientAddress,
) -> dict[str, Any]:
    """GoTrue `user.go` `UserUpdate`: a new password (ending the user's other sessions), `data`
    merged into `user_metadata` (null deletes a key) and/or a new address (mailed a link), all
    or nothing: a refused part (a taken address, a mail limit, a bad nonce) changes nothing."""
    body = await read_body(request, UserUpdateBody)
    if body.app_metadata is not None:
        # GoTrue refuses it rather than ignore it, so a client learns the update did not happen.
        raise GoTrueError(
            403, GoTrueCode.NOT_ADMIN, "Updating app_metadata requires admin privileges"
        )
    new_email = challenge = None
    if body.email and email_key(body.email) != email_key(caller.user.email):
        new_email = checked_email(body.email)
        # GoTrue reads the challenge only for an email change (and, unchecked, 500s on a
        # malformed one); checked here as everywhere else.
        challenge = code_challenge(body)
    if body.phone:
        raise phone_disabled("logins")
    # A 429 is the mail's only when nothing else was counted (a guessed nonce or password is
    # the sign-in limit's, GoTrue's request limit).
    mail_only = new_email is not None and body.password is None and not body.nonce
    try:
        with translate_app_errors(
            user_exists=email_exists, rate_limited=email_rate_limited if mail_only else None
        ):
            user = await sessions.gotrue_update_user(
                claims=caller.claims,
                address=address,
                links=verify_links(request, config),
                password=body.password,
                user_metadata=body.data,
                nonce=body.nonce,
                new_email=new_email,
                challenge=challenge,
                require_reauthentication=(
                    config.gotrue_security_update_password_require_reauthentication
                ),
            )
    except NonceRequired:
        raise bad_request(
            GoTrueCode.REAUTHENTICATION_NEEDED, "Password update requires reauthentication"
        ) from None
    except NonceInvalid:
        raise GoTrueError(
            422, GoTrueCode.REAUTHENTICATION_NOT_VALID, "Nonce has expired or is invalid"
        ) from None
    if user is None:
        raise GoTrueError(
            403, GoTrueCode.USER_NOT_FOUND, "User from sub claim in JWT does not exist"
        )
    if new_email is None:
        return user_json(user)
    # GoTrue `user.go`: the address changes only when the link mailed to it is followed.
    return {**user_json(user), "new_email": new_email, "email_change_sent_at": _now_iso()}


@router.post("/logout", status_code=204, response_class=Response)
async def logout(request: Request, caller: SignedIn, gotrue: GoTrueDep) -> Response:
    """GoTrue `logout.go`: 204; `scope` global (default), local or others."""
    requested = request.query_params.get("scope", "")
    scope = _LOGOUT_SCOPES.get(requested)
    if scope is None:
        raise validation_failed(f"Unsupported logout scope {json.dumps(requested)}")
    with translate_app_errors():
        await gotrue.end_sessions(caller.claims, scope)
    return Response(status_code=204)


@router.get("/settings")
async def settings(_key: ApiKey, config: Config) -> dict[str, Any]:
    """GoTrue `settings.go`: email on, everything else off; the sign-up switches as set."""
    external = dict.fromkeys(_OFF_PROVIDERS, False)
    return {
        "external": external | {"email": True},
        "disable_signup": config.gotrue_disable_signup,
        "mailer_autoconfirm": not config.email_confirmation_required,
        "phone_autoconfirm": False,
        "sms_provider": "",
        "saml_enabled": False,
        "saml_private_key_next_configured": False,
        "passkeys_enabled": False,
    }


@router.get("/health")
async def health(_key: ApiKey) -> dict[str, str]:
    """GoTrue `api.go` `HealthCheck`."""
    return {
        "version": "myideas-embedded",
        "name": "GoTrue",
        "description": "GoTrue is a user registration and authentication API",
    }


@router.post("/admin/users", openapi_extra=openapi_body(AdminCreateBody))
async def admin_create_user(request: Request, _admin: Admin, gotrue: GoTrueDep) -> dict[str, Any]:
    """GoTrue `admin.go` `adminUserCreate`: 200 the user; a random password when none;
    `ban_duration` as on update (checked after the address, as GoTrue orders it)."""
    body = await read_body(request, AdminCreateBody)
    if not body.email:
        if body.phone:
            raise validation_failed("Phone users are not supported here")
        raise validation_failed("Cannot create a user without either an email or phone")
    email = checked_email(body.email)
    ban_for = _ban_duration(body.ban_duration)
    with translate_app_errors(user_exists=email_exists):
        user = await gotrue.admin_create_user(
            email=email,
            password=body.password,
            email_confirm=body.email_confirm,
            user_metadata=body.user_metadata or {},
            app_metadata=body.app_metadata or {},
            ban_for=ban_for,
        )
    return user_json(user)


def _ban_duration(value: str | None) -> timedelta | None:
    """GoTrue's `ban_duration` (`admin.go`): absent or "" leaves the ban as it is, "none" lifts
    it (a zero duration), anything else is a Go duration (`time.ParseDuration`: "24h",
    "1h30m"; a negative one sets `banned_until` in the past, which is no ban). GoTrue's message
    quotes the value as Go does (`\\xNN` for any non-ASCII or control byte): it is the admin's
    own input, not a secret."""
    if not value:
        return None
    if value == "none":
        return timedelta(0)
    try:
        return parse_go_duration(value)
    except DurationInvalid as exc:
        raise validation_failed(f"invalid format for ban duration: {exc}") from None


def _page_number(request: Request, name: str, default: int) -> int:
    value = request.query_params.get(name, "")
    if value == "":  # supabase-py sends `?page=&per_page=` for "not given"
        return default
    # ASCII digits only ("²".isdigit() is true) and bounded, so the offset fits any database.
    if not (value.isascii() and value.isdigit()) or len(value) > 10 or int(value) > _MAX_PAGE:
        raise validation_failed(f"Bad Pagination Parameters: invalid {name}")
    return int(value)


def _link_header(request: Request, *, page: int, total_pages: int) -> str:
    """GoTrue's `addPaginationHeaders`: `next` while there is one, always `last`; the query
    sorted by name, as Go's `url.Values.Encode` writes it (supabase-js reads the page from it)."""

    def url(to_page: int) -> str:
        query = [(k, v) for k, v in request.query_params.multi_items() if k != "page"]
        query.append(("page", str(to_page)))
        return f"<{request.url.path}?{urlencode(sorted(query))}>"

    links = [f'{url(page + 1)}; rel="next"'] if total_pages > page else []
    links.append(f'{url(total_pages)}; rel="last"')
    return ", ".join(links)


@router.get("/admin/users")
async def admin_list_users(request: Request, _admin: Admin, gotrue: GoTrueDep) -> JSONResponse:
    """GoTrue `admin.go` `adminUsers`: newest first, `X-Total-Count` and `Link` headers."""
    page = max(1, _page_number(request, "page", 1))
    per_page = _page_number(request, "per_page", _DEFAULT_PER_PAGE) or _ORM_DEFAULT_PER_PAGE
    per_page = min(per_page, _MAX_PER_PAGE)
    with translate_app_errors():
        users, total = await gotrue.admin_list_users(page=page, per_page=per_page)
    total_pages = -(-total // per_page)
    return JSONResponse(
        {"users": [user_json(user) for user in users], "aud": "authenticated"},
        headers={
            "X-Total-Count": str(total),
            "Link": _link_header(request, page=page, total_pages=total_pages),
        },
    )


def _user_id(user_id: str) -> str:
    try:
        return str(uuid.UUID(user_id))
    except ValueError:
        raise GoTrueError(404, GoTrueCode.VALIDATION_FAILED, "user_id must be an UUID") from None


def _user_not_found() -> GoTrueError:
    return GoTrueError(404, GoTrueCode.USER_NOT_FOUND, "User not found")


@router.get("/admin/users/{user_id}")
async def admin_get_user(user_id: str, _admin: Admin, gotrue: GoTrueDep) -> dict[str, Any]:
    """GoTrue `admin.go` `adminUserGet`."""
    with translate_app_errors():
        user = await gotrue.admin_get_user(_user_id(user_id))
    if user is None:
        raise _user_not_found()
    return user_json(user)


@router.put("/admin/users/{user_id}", openapi_extra=openapi_body(AdminUpdateBody))
async def admin_update_user(
    request: Request, user_id: str, _admin: Admin, gotrue: GoTrueDep
) -> dict[str, Any]:
    """GoTrue `admin.go` `adminUserUpdate`: email (set at once, no mail), password (ending
    every session), `user_metadata` / `app_metadata` (merged), `email_confirm`,
    `ban_duration` (see `_ban_duration`; a ban ends no session, it refuses them while it
    holds). A taken email is 422 `email_exists` (GoTrue, with no pre-check, answers 500 "Error
    updating user")."""
    checked_id = _user_id(user_id)
    body = await read_body(request, AdminUpdateBody)
    email = checked_email(body.email) if body.email else None
    if body.phone:
        raise validation_failed("Phone users are not supported here")
    ban_for = _ban_duration(body.ban_duration)
    if body.role and body.role != "authenticated":
        raise validation_failed("Roles other than authenticated are not supported here")
    if body.password is not None and len(body.password) > MAX_PASSWORD_LENGTH:
        raise validation_failed(f"Password cannot be longer than {MAX_PASSWORD_LENGTH} characters")
    with translate_app_errors(user_exists=email_exists):
        user = await gotrue.admin_update_user(
            checked_id,
            email=email,
            password=body.password,
            user_metadata=body.user_metadata,
            app_metadata=body.app_metadata,
            email_confirm=body.email_confirm,
            ban_for=ban_for,
        )
    if user is None:
        raise _user_not_found()
    return user_json(user)


@router.delete("/admin/users/{user_id}", openapi_extra=openapi_body(AdminDeleteBody))
async def admin_delete_user(
    request: Request, user_id: str, _admin: Admin, gotrue: GoTrueDep
) -> dict[str, Any]:
    """GoTrue `admin.go` `adminUserDelete`: 200 `{}`. A hard delete takes the user's sessions,
    profile and items with it; `should_soft_delete: true` keeps the row with its address
    obfuscated, its metadata emptied, `deleted_at` set and every session ended (GoTrue's
    `SoftDeleteUser`), and again is a no-op."""
    checked_id = _user_id(user_id)
    body = await read_body(request, AdminDeleteBody)
    with translate_app_errors():
        deleted = await gotrue.admin_delete_user(checked_id, soft=body.should_soft_delete)
    if not deleted:
        raise _user_not_found()
    return {}


router.include_router(lifecycle.router)
router.include_router(disabled.router)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
