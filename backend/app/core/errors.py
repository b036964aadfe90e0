"""One error tree for the service, and the `{code, message, details}` body it is reported in.

Domain code raises these exceptions and knows nothing of the web framework; `STATUS_BY_CODE` below
is the one place where an error code meets its status. The handlers that render them (and the
framework's own 404, 405, 422, 500 in the same body) are the API layer's: `api/errors.py`.

    AppError
    ├── RequestInvalid            422 validation_error
    │   └── SamePassword              (GoTrue API: 422 same_password)
    ├── WeakPassword              422 weak_password
    ├── UserAlreadyExists         409 user_already_exists
    ├── InvalidCredentials        401 auth_invalid_credentials
    │   └── EmailNotConfirmed     403 email_not_confirmed   (GoTrue API: 400)
    ├── Unauthorized              401 unauthorized          (+ WWW-Authenticate)
    ├── RefreshTokenError         401 refresh_token_*
    │   ├── RefreshTokenMissing
    │   ├── RefreshTokenInvalid
    │   └── RefreshTokenReused
    ├── AccountTokenInvalid       400 token_invalid         (a lifecycle link's token)
    ├── InvalidCurrentPassword    403 invalid_current_password
    ├── UserBanned                403 user_banned           (GoTrue API: 400 or 403, as GoTrue)
    ├── CsrfError                 403 csrf_* / origin_not_allowed
    │   ├── CsrfMissing
    │   ├── CsrfMismatch
    │   └── OriginNotAllowed
    ├── RateLimited               429 rate_limited          (+ Retry-After)
    ├── NotFound                  404 not_found
    ├── NotSupported              501 not_supported         (a flow this provider lacks yet)
    └── ProviderUnavailable       503 provider_unavailable  (+ Retry-After)

    db.engine.DatabaseUnavailable 503 database_unavailable  (+ Retry-After: the data layer's one
                                                             outage error, rendered by api/errors)
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

__all__ = [
    "AccountTokenInvalid",
    "AppError",
    "CsrfError",
    "CsrfMismatch",
    "CsrfMissing",
    "EmailNotConfirmed",
    "ErrorCode",
    "InvalidCredentials",
    "InvalidCurrentPassword",
    "NotFound",
    "NotSupported",
    "OriginNotAllowed",
    "ProviderUnavailable",
    "RateLimited",
    "RefreshTokenError",
    "RefreshTokenInvalid",
    "RefreshTokenMissing",
    "RefreshTokenReused",
    "RequestInvalid",
    "SamePassword",
    "Unauthorized",
    "UserAlreadyExists",
    "UserBanned",
    "WeakPassword",
    "error_body",
]


class ErrorCode(StrEnum):
    VALIDATION_ERROR = "validation_error"
    TOKEN_INVALID = "token_invalid"
    EMAIL_NOT_CONFIRMED = "email_not_confirmed"
    WEAK_PASSWORD = "weak_password"
    USER_ALREADY_EXISTS = "user_already_exists"
    AUTH_INVALID_CREDENTIALS = "auth_invalid_credentials"
    UNAUTHORIZED = "unauthorized"
    INVALID_CURRENT_PASSWORD = "invalid_current_password"
    USER_BANNED = "user_banned"
    REFRESH_TOKEN_MISSING = "refresh_token_missing"
    REFRESH_TOKEN_INVALID = "refresh_token_invalid"
    REFRESH_TOKEN_REUSED = "refresh_token_reused"
    CSRF_MISSING = "csrf_missing"
    CSRF_MISMATCH = "csrf_mismatch"
    ORIGIN_NOT_ALLOWED = "origin_not_allowed"
    RATE_LIMITED = "rate_limited"
    NOT_FOUND = "not_found"
    NOT_SUPPORTED = "not_supported"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    HTTP_ERROR = "http_error"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    DATABASE_UNAVAILABLE = "database_unavailable"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    HEADERS_TOO_LARGE = "request_headers_too_large"
    INTERNAL_ERROR = "internal_error"


STATUS_BY_CODE: dict[ErrorCode, int] = {
    ErrorCode.VALIDATION_ERROR: 422,
    ErrorCode.TOKEN_INVALID: 400,
    ErrorCode.EMAIL_NOT_CONFIRMED: 403,
    ErrorCode.WEAK_PASSWORD: 422,
    ErrorCode.USER_ALREADY_EXISTS: 409,
    ErrorCode.AUTH_INVALID_CREDENTIALS: 401,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.INVALID_CURRENT_PASSWORD: 403,
    ErrorCode.USER_BANNED: 403,
    ErrorCode.REFRESH_TOKEN_MISSING: 401,
    ErrorCode.REFRESH_TOKEN_INVALID: 401,
    ErrorCode.REFRESH_TOKEN_REUSED: 401,
    ErrorCode.CSRF_MISSING: 403,
    ErrorCode.CSRF_MISMATCH: 403,
    ErrorCode.ORIGIN_NOT_ALLOWED: 403,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.NOT_SUPPORTED: 501,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.PROVIDER_UNAVAILABLE: 503,
    ErrorCode.DATABASE_UNAVAILABLE: 503,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.HEADERS_TOO_LARGE: 431,
    ErrorCode.INTERNAL_ERROR: 500,
}


class AppError(Exception):
    """Root of every error this service reports to a client.

    Args:
        message: overrides the class's default message; never include a secret.
        details: machine-readable context; never include a submitted value.
    """

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL_ERROR
    default_message: ClassVar[str] = "Internal server error"

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None):
        self.message = message or self.default_message
        self.details = details or {}
        super().__init__(self.message)

    def headers(self) -> dict[str, str]:
        return {}


class RequestInvalid(AppError):
    code = ErrorCode.VALIDATION_ERROR
    default_message = "The request is not valid"


class SamePassword(RequestInvalid):
    """A password change to the password the user already has (GoTrue's `same_password`)."""

    default_message = "New password should be different from the old password."


class WeakPassword(AppError):
    code = ErrorCode.WEAK_PASSWORD
    default_message = "The password does not meet the password policy"


class UserAlreadyExists(AppError):
    code = ErrorCode.USER_ALREADY_EXISTS
    default_message = "A user with this email already exists"


class InvalidCredentials(AppError):
    code = ErrorCode.AUTH_INVALID_CREDENTIALS
    default_message = "Invalid email or password"


class EmailNotConfirmed(InvalidCredentials):
    """The password was right, but the address is not confirmed yet (EMAIL_CONFIRMATION_REQUIRED,
    or an admin created the user without `email_confirm`). Raised only after the password check,
    so it reveals nothing to someone without the password: `/auth` answers 403
    `email_not_confirmed`, GoTrue's API 400 `email_not_confirmed`."""

    code = ErrorCode.EMAIL_NOT_CONFIRMED
    default_message = "Email not confirmed"


class AccountTokenInvalid(AppError):
    """A confirmation or reset token that is unknown, spent, expired or of another kind: one
    answer for all, so a token's state is not revealed."""

    code = ErrorCode.TOKEN_INVALID
    default_message = "The link is invalid or has expired; ask for a new one"


class InvalidCurrentPassword(AppError):
    """A signed-in caller gave the wrong current password. 403, not 401: the access token is
    fine (a 401 would send the browser client to refresh and retry for nothing)."""

    code = ErrorCode.INVALID_CURRENT_PASSWORD
    default_message = "The current password is not correct"


class UserBanned(AppError):
    """An admin banned the user (GoTrue's `ban_duration`) and the ban has not run out. 403, not
    401: the caller is who they say, and signing in again would not help. A sign-in says so only
    after the password is checked (embedded provider), so it reveals nothing to someone without
    the password; neither the end of the ban nor who set it is told."""

    code = ErrorCode.USER_BANNED
    default_message = "This account is banned"


class Unauthorized(AppError):
    """No usable access token. 401, never 403: the client must authenticate, not give up.

    Args:
        token_was_sent: a Bearer token was presented and refused (adds `error="invalid_token"`).
    """

    code = ErrorCode.UNAUTHORIZED
    default_message = "Missing or invalid token"

    def __init__(self, *, token_was_sent: bool = False, details: dict[str, Any] | None = None):
        super().__init__(details=details)
        self.token_was_sent = token_was_sent

    def headers(self) -> dict[str, str]:
        return {
            "WWW-Authenticate": 'Bearer error="invalid_token"' if self.token_was_sent else "Bearer"
        }


class RefreshTokenError(AppError):
    code = ErrorCode.REFRESH_TOKEN_INVALID
    default_message = "The session is not valid; sign in again"


class RefreshTokenMissing(RefreshTokenError):
    code = ErrorCode.REFRESH_TOKEN_MISSING
    default_message = "No refresh cookie was sent; sign in again"


class RefreshTokenInvalid(RefreshTokenError):
    code = ErrorCode.REFRESH_TOKEN_INVALID
    default_message = "The refresh token is invalid, expired or revoked; sign in again"


class RefreshTokenReused(RefreshTokenError):
    code = ErrorCode.REFRESH_TOKEN_REUSED
    default_message = "The refresh token was already used; the session has been revoked"


class CsrfError(AppError):
    code = ErrorCode.CSRF_MISMATCH
    default_message = "CSRF check failed"


class CsrfMissing(CsrfError):
    code = ErrorCode.CSRF_MISSING
    default_message = (
        "Missing CSRF token: fetch one from GET /auth/csrf and send it as X-CSRF-Token"
    )


class CsrfMismatch(CsrfError):
    code = ErrorCode.CSRF_MISMATCH
    default_message = "The X-CSRF-Token header does not match the CSRF cookie"


class OriginNotAllowed(CsrfError):
    code = ErrorCode.ORIGIN_NOT_ALLOWED
    default_message = "This origin is not allowed to call the API"


class RateLimited(AppError):
    code = ErrorCode.RATE_LIMITED
    default_message = "Too many attempts; try again later"

    def __init__(self, *, retry_after_seconds: int):
        super().__init__(details={"retryAfterSeconds": retry_after_seconds})
        self.retry_after_seconds = retry_after_seconds

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class NotFound(AppError):
    code = ErrorCode.NOT_FOUND
    default_message = "Not found"


class NotSupported(AppError):
    """A lifecycle flow the configured provider does not offer yet (the supabase provider's
    side is issue 16): a clean 501 rather than a 500."""

    code = ErrorCode.NOT_SUPPORTED
    default_message = "This operation is not supported by the configured identity provider"


class ProviderUnavailable(AppError):
    code = ErrorCode.PROVIDER_UNAVAILABLE
    default_message = "The identity provider is unavailable; try again shortly"

    def __init__(self, *, retry_after_seconds: int = 1):
        super().__init__()
        self.retry_after_seconds = retry_after_seconds

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "details": details or {}}
