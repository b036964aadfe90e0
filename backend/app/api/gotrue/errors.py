"""GoTrue's errors, in GoTrue's two body formats, and the gateway's key refusals.

`/auth/v1` answers as Supabase Auth does behind its gateway, not with this app's
`{code, message, details}`, because supabase-js and supabase-py read these bodies
(docs/gotrue-api.md §1):

- a request with `X-Supabase-Api-Version` ≥ 2024-01-01 gets `{"code": "<error code>",
  "message": …}` and the header echoed back: the clients read `code` only when it is echoed;
- any other request gets the legacy `{"code": <status>, "error_code": "<error code>", "msg": …}`;
- `weak_password` adds `"weak_password": {"reasons": [...]}` in both;
- `x-sb-error-code` names the code (GoTrue `internal/api/errors.go`).

    GoTrueResponseError             rendered by `install_gotrue_error_handlers`
    ├── GoTrueError                 an HTTPError: a status, a code, a message
    ├── GoTrueOAuthError            400 {"error": "invalid_request", "error_description"}
    └── GatewayRefusal              401 {"message", "hint"}: the gateway's, with no code

Errors of the app's own tree raised by the provider are translated by `translate_app_errors`;
the framework's (404, 405, 413, 422, 500) are rendered here too for paths under `/auth/v1`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from enum import StrEnum
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute
from starlette.types import ExceptionHandler

from backend.app.api.errors import methods_of_path
from backend.app.core.errors import (
    STATUS_BY_CODE,
    AccountTokenInvalid,
    AppError,
    EmailNotConfirmed,
    ErrorCode,
    InvalidCredentials,
    NotFound,
    ProviderUnavailable,
    RateLimited,
    RefreshTokenInvalid,
    RefreshTokenReused,
    SamePassword,
    UserAlreadyExists,
    UserBanned,
    WeakPassword,
)
from backend.app.db.engine import DatabaseUnavailable

__all__ = [
    "API_VERSION_HEADER",
    "PREFIX",
    "GatewayRefusal",
    "GoTrueCode",
    "GoTrueError",
    "GoTrueOAuthError",
    "bad_request",
    "code_invalid",
    "email_exists",
    "email_rate_limited",
    "install_gotrue_error_handlers",
    "invalid_api_key",
    "link_invalid",
    "no_api_key",
    "phone_disabled",
    "request_limit_refusal",
    "translate_app_errors",
    "user_already_exists",
    "user_banned",
    "validation_failed",
]

logger = logging.getLogger(__name__)

PREFIX = "/auth/v1"
API_VERSION_HEADER = "X-Supabase-Api-Version"
_API_VERSION_2024 = date(2024, 1, 1)


class GoTrueCode(StrEnum):
    """The error codes of GoTrue's `internal/api/apierrors/errorcode.go` that this API answers."""

    ANONYMOUS_PROVIDER_DISABLED = "anonymous_provider_disabled"
    BAD_CODE_VERIFIER = "bad_code_verifier"
    BAD_JSON = "bad_json"
    BAD_JWT = "bad_jwt"
    EMAIL_EXISTS = "email_exists"
    EMAIL_NOT_CONFIRMED = "email_not_confirmed"
    FLOW_STATE_EXPIRED = "flow_state_expired"
    FLOW_STATE_NOT_FOUND = "flow_state_not_found"
    INVALID_CREDENTIALS = "invalid_credentials"
    MANUAL_LINKING_DISABLED = "manual_linking_disabled"
    MFA_FACTOR_NOT_FOUND = "mfa_factor_not_found"
    MFA_PHONE_ENROLL_NOT_ENABLED = "mfa_phone_enroll_not_enabled"
    MFA_TOTP_ENROLL_NOT_ENABLED = "mfa_totp_enroll_not_enabled"
    MFA_WEBAUTHN_ENROLL_NOT_ENABLED = "mfa_webauthn_enroll_not_enabled"
    NO_AUTHORIZATION = "no_authorization"
    NOT_ADMIN = "not_admin"
    OTP_DISABLED = "otp_disabled"
    OTP_EXPIRED = "otp_expired"
    OVER_EMAIL_SEND_RATE_LIMIT = "over_email_send_rate_limit"
    PHONE_PROVIDER_DISABLED = "phone_provider_disabled"
    PROVIDER_DISABLED = "provider_disabled"
    OVER_REQUEST_RATE_LIMIT = "over_request_rate_limit"
    REAUTHENTICATION_NEEDED = "reauthentication_needed"
    REAUTHENTICATION_NOT_VALID = "reauthentication_not_valid"
    REFRESH_TOKEN_ALREADY_USED = "refresh_token_already_used"
    REFRESH_TOKEN_NOT_FOUND = "refresh_token_not_found"
    SAME_PASSWORD = "same_password"
    SAML_PROVIDER_DISABLED = "saml_provider_disabled"
    SESSION_NOT_FOUND = "session_not_found"
    SIGNUP_DISABLED = "signup_disabled"
    USER_BANNED = "user_banned"
    WEB3_PROVIDER_DISABLED = "web3_provider_disabled"
    UNEXPECTED_FAILURE = "unexpected_failure"
    USER_ALREADY_EXISTS = "user_already_exists"
    USER_NOT_FOUND = "user_not_found"
    VALIDATION_FAILED = "validation_failed"
    WEAK_PASSWORD = "weak_password"
    # Not GoTrue's (its router answers these in plain text); named for the framework's errors.
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    REQUEST_TOO_LARGE = "request_too_large"
    REQUEST_HEADERS_TOO_LARGE = "request_headers_too_large"


class GoTrueResponseError(Exception):
    """Root of the errors `/auth/v1` renders in GoTrue's (or its gateway's) own formats."""

    def response(self, request: Request) -> Response:
        raise NotImplementedError


def _wants_2024_format(request: Request) -> bool:
    # GoTrue `DetermineClosestAPIVersion`: a YYYY-MM-DD on or after 2024-01-01; anything else,
    # including garbage, is the initial (legacy) version.
    try:
        requested = date.fromisoformat(request.headers.get(API_VERSION_HEADER, ""))
    except ValueError:
        return False
    return requested >= _API_VERSION_2024


class GoTrueError(GoTrueResponseError):
    """GoTrue's `HTTPError`. The message must never carry a secret or a submitted value."""

    def __init__(
        self,
        status: int,
        code: GoTrueCode,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        weak_password_reasons: list[str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.weak_password_reasons = weak_password_reasons

    def response(self, request: Request) -> Response:
        headers = dict(self.headers)
        body: dict[str, Any]
        if _wants_2024_format(request):
            headers[API_VERSION_HEADER] = _API_VERSION_2024.isoformat()
            body = {"code": self.code.value, "message": self.message}
            if self.weak_password_reasons is None:
                headers["x-sb-error-code"] = self.code.value  # not on weak_password, as GoTrue
        else:
            body = {"code": self.status, "error_code": self.code.value, "msg": self.message}
            headers["x-sb-error-code"] = self.code.value
        if self.weak_password_reasons is not None:
            body["weak_password"] = {"reasons": self.weak_password_reasons}
        return JSONResponse(body, status_code=self.status, headers=headers)


class GoTrueOAuthError(GoTrueResponseError):
    """GoTrue's `OAuthError`, for a refresh grant without a refresh token."""

    def __init__(self, description: str, error: str = "invalid_request"):
        super().__init__(description)
        self.error = error
        self.description = description

    def response(self, request: Request) -> Response:
        headers = {}
        if _wants_2024_format(request):
            headers[API_VERSION_HEADER] = _API_VERSION_2024.isoformat()
        return JSONResponse(
            {"error": self.error, "error_description": self.description},
            status_code=400,
            headers=headers,
        )


class GatewayRefusal(GoTrueResponseError):
    """What Supabase's gateway (Kong `key-auth`) answers before GoTrue sees the request."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def response(self, request: Request) -> Response:
        return JSONResponse({"message": self.message, "hint": self.hint}, status_code=401)


def no_api_key() -> GatewayRefusal:
    return GatewayRefusal(
        "No API key found in request", "No `apikey` request header or url param was found."
    )


def invalid_api_key() -> GatewayRefusal:
    return GatewayRefusal(
        "Invalid API key", "Double check your Supabase `anon` or `service_role` API key."
    )


def bad_request(code: GoTrueCode, message: str) -> GoTrueError:
    return GoTrueError(400, code, message)


def phone_disabled(action: str) -> GoTrueError:
    """GoTrue's phone provider, off: "Phone signups are disabled" (400), "… logins …" (422)."""
    return GoTrueError(
        400 if action == "signups" else 422,
        GoTrueCode.PHONE_PROVIDER_DISABLED,
        f"Phone {action} are disabled",
    )


def validation_failed(message: str, status: int = 400) -> GoTrueError:
    return GoTrueError(status, GoTrueCode.VALIDATION_FAILED, message)


def _weak_password(exc: WeakPassword) -> GoTrueError:
    # This app's policy (8 to 1024 characters) stands; only its words are GoTrue's. GoTrue too
    # answers a password over its maximum with 400 validation_failed, not weak_password.
    if "too_long" in exc.details.get("reasons", []):
        maximum = exc.details.get("maxLength")
        return validation_failed(f"Password cannot be longer than {maximum} characters")
    if "common" in exc.details.get("reasons", []):
        # GoTrue's reason for a password found in a breach list (HaveIBeenPwned there).
        return GoTrueError(
            422,
            GoTrueCode.WEAK_PASSWORD,
            "Password is known to be weak and easy to guess, please choose a different one.",
            weak_password_reasons=["pwned"],
        )
    minimum = exc.details.get("minLength")
    return GoTrueError(
        422,
        GoTrueCode.WEAK_PASSWORD,
        f"Password should be at least {minimum} characters.",
        weak_password_reasons=["length"],
    )


def _unavailable(retry_after_seconds: int) -> GoTrueError:
    # A 503 (not GoTrue's 500): both clients treat it as retryable and keep their session.
    return GoTrueError(
        503,
        GoTrueCode.UNEXPECTED_FAILURE,
        "The authentication service is unavailable; try again shortly",
        headers={"Retry-After": str(retry_after_seconds)},
    )


def _from_app_error(
    exc: AppError,
    *,
    user_exists: Callable[[], GoTrueError],
    rate_limited: Callable[[RateLimited], GoTrueError] | None = None,
    token_invalid: Callable[[], GoTrueError] | None = None,
    banned: Callable[[], GoTrueError] | None = None,
) -> GoTrueError:
    match exc:
        case UserBanned():
            return (banned or user_banned)()
        case RateLimited() if rate_limited is not None:
            return rate_limited(exc)
        case AccountTokenInvalid():
            return (token_invalid or link_invalid)()
        case WeakPassword():
            return _weak_password(exc)
        case SamePassword():
            return GoTrueError(422, GoTrueCode.SAME_PASSWORD, exc.message)
        case UserAlreadyExists():
            return user_exists()
        case EmailNotConfirmed():
            return bad_request(GoTrueCode.EMAIL_NOT_CONFIRMED, "Email not confirmed")
        case InvalidCredentials():
            return bad_request(GoTrueCode.INVALID_CREDENTIALS, "Invalid login credentials")
        case RefreshTokenReused():
            return bad_request(
                GoTrueCode.REFRESH_TOKEN_ALREADY_USED, "Invalid Refresh Token: Already Used"
            )
        case RefreshTokenInvalid():
            return bad_request(
                GoTrueCode.REFRESH_TOKEN_NOT_FOUND, "Invalid Refresh Token: Refresh Token Not Found"
            )
        case RateLimited():
            return GoTrueError(
                429,
                GoTrueCode.OVER_REQUEST_RATE_LIMIT,
                "Request rate limit reached",
                headers=exc.headers(),
            )
        case NotFound():
            return GoTrueError(404, GoTrueCode.USER_NOT_FOUND, "User not found")
        case ProviderUnavailable():
            return _unavailable(exc.retry_after_seconds)
    logger.error("unexpected error under /auth/v1", extra={"code": exc.code.value})
    return GoTrueError(500, GoTrueCode.UNEXPECTED_FAILURE, "Unexpected failure")


# Sign-up says `user_already_exists`; the admin API and `PUT /user` say `email_exists`.
def user_already_exists() -> GoTrueError:
    return GoTrueError(422, GoTrueCode.USER_ALREADY_EXISTS, "User already registered")


def email_exists() -> GoTrueError:
    return GoTrueError(
        422, GoTrueCode.EMAIL_EXISTS, "A user with this email address has already been registered"
    )


def email_rate_limited(exc: RateLimited) -> GoTrueError:
    """GoTrue's answer when the mail count is spent (`internal/api/mail.go`)."""
    return GoTrueError(
        429,
        GoTrueCode.OVER_EMAIL_SEND_RATE_LIMIT,
        "email rate limit exceeded",
        headers=exc.headers(),
    )


def user_banned(message: str = "User is banned", status: int = 403) -> GoTrueError:
    """GoTrue's refusal of a banned user: 403 "User is banned" at `/verify` and on a bearer
    route (`verify.go`, `auth.go`); the password grant says it with 400 (`token.go`), the
    refresh grant with 400 "Invalid Refresh Token: User Banned" (`tokens/service.go`)."""
    return GoTrueError(status, GoTrueCode.USER_BANNED, message)


def link_invalid() -> GoTrueError:
    """A link's token (`token_hash`) unknown, spent, expired or of another type."""
    return GoTrueError(403, GoTrueCode.OTP_EXPIRED, "Email link is invalid or has expired")


def code_invalid() -> GoTrueError:
    """A mail's code (`token` + `email`) wrong, spent or expired."""
    return GoTrueError(403, GoTrueCode.OTP_EXPIRED, "Token has expired or is invalid")


@contextmanager
def translate_app_errors(
    *,
    user_exists: Callable[[], GoTrueError] = user_already_exists,
    rate_limited: Callable[[RateLimited], GoTrueError] | None = None,
    token_invalid: Callable[[], GoTrueError] | None = None,
    banned: Callable[[], GoTrueError] | None = None,
) -> Iterator[None]:
    """Turn the app's errors raised by the provider (or the limiter) into GoTrue's.

    Args:
        user_exists: the answer to UserAlreadyExists (sign-up's, or the admin API's).
        rate_limited: the answer to RateLimited (a mail route's); default GoTrue's request limit.
        token_invalid: the answer to AccountTokenInvalid; default `link_invalid`.
        banned: the answer to UserBanned; default `user_banned` (403, GoTrue's `/verify` and
            bearer check); the token grants answer 400 (`token.go`, `tokens/service.go`).
    """
    try:
        yield
    except AppError as exc:
        raise _from_app_error(
            exc,
            user_exists=user_exists,
            rate_limited=rate_limited,
            token_invalid=token_invalid,
            banned=banned,
        ) from exc
    except DatabaseUnavailable as exc:
        raise _unavailable(exc.retry_after_seconds) from exc


_FRAMEWORK_CODES = {
    404: GoTrueCode.NOT_FOUND,
    405: GoTrueCode.METHOD_NOT_ALLOWED,
    413: GoTrueCode.REQUEST_TOO_LARGE,
}


def _framework_error(request: Request, exc: Exception, routes: Sequence[BaseRoute]) -> GoTrueError:
    match exc:
        case GoTrueError():
            return exc
        case RequestValidationError():
            # Only where, never the value (pydantic's `input` would echo a password).
            where = ".".join(str(part) for part in exc.errors()[0]["loc"]) if exc.errors() else ""
            return validation_failed(f"Invalid request: {where}".rstrip(": "))
        case StarletteHTTPException():
            if exc.status_code == 400:
                return bad_request(GoTrueCode.BAD_JSON, "Could not read the request body")
            code = _FRAMEWORK_CODES.get(exc.status_code, GoTrueCode.UNEXPECTED_FAILURE)
            headers = dict(exc.headers or {})
            if exc.status_code == 405:  # every method of the path, as on the app's own routes
                headers["Allow"] = ", ".join(methods_of_path(routes, request.scope))
            return GoTrueError(exc.status_code, code, str(exc.detail), headers=headers)
        case AppError():
            return _from_app_error(exc, user_exists=user_already_exists)
        case DatabaseUnavailable():
            return _unavailable(exc.retry_after_seconds)
    logger.exception("unhandled error under /auth/v1", exc_info=exc)
    return GoTrueError(500, GoTrueCode.UNEXPECTED_FAILURE, "Unexpected failure")


def _under_prefix(request: Request) -> bool:
    path: str = request.scope.get("path", "")
    return path == PREFIX or path.startswith(PREFIX + "/")


_LIMIT_CODES = {
    ErrorCode.PAYLOAD_TOO_LARGE: GoTrueCode.REQUEST_TOO_LARGE,
    ErrorCode.HEADERS_TOO_LARGE: GoTrueCode.REQUEST_HEADERS_TOO_LARGE,
}


def request_limit_refusal(request: Request, code: ErrorCode, message: str) -> Response | None:
    """The request-limits middleware's 413 and 431 under `/auth/v1`, in GoTrue's format (the
    same as a body that grows too large while read); None elsewhere, for the app's own."""
    if not _under_prefix(request):
        return None
    return GoTrueError(STATUS_BY_CODE[code], _LIMIT_CODES[code], message).response(request)


async def _render(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GoTrueResponseError)  # noqa: S101 -- registered for this type only
    return exc.response(request)


def _path_aware(previous: ExceptionHandler | None, routes: Sequence[BaseRoute]) -> ExceptionHandler:
    async def handle(request: Request, exc: Exception) -> Any:
        if _under_prefix(request) or previous is None:
            return _framework_error(request, exc, routes).response(request)
        # The app's handlers are all async HTTP ones.
        handler = cast(Callable[[Request, Exception], Awaitable[Response]], previous)
        return await handler(request, exc)

    return handle


def install_gotrue_error_handlers(app: FastAPI, *, routes: Sequence[BaseRoute]) -> None:
    """Render GoTrue's errors, and every other error under `/auth/v1`, in GoTrue's formats.

    Call after the app's own `install_error_handlers`: for paths outside `/auth/v1` the app's
    handlers still answer, unchanged. `routes`: those of `/auth/v1`, for the `Allow` of a 405.
    """
    app.add_exception_handler(GoTrueResponseError, _render)
    for kind in (
        RequestValidationError,
        StarletteHTTPException,
        AppError,
        DatabaseUnavailable,
        Exception,
    ):
        app.add_exception_handler(kind, _path_aware(app.exception_handlers.get(kind), routes))
