"""GoTrue's request bodies, read leniently, and its user and session JSON.

The clients send fields a strict model would refuse (`gotrue_meta_security`, `code_challenge:
null`, a body on `DELETE`, docs/gotrue-api.md §7), so unknown fields are ignored, as GoTrue's
`json.Decoder` ignores them. Bodies are parsed here, not by FastAPI, so that a malformed one is
GoTrue's 400 (`bad_json`, `validation_failed`), never this app's 422.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

import email_validator
from fastapi import Request
from pydantic import BaseModel, ConfigDict, StrictBool, ValidationError

# Imported for its effect too: it lets email-validator accept special-use domains, as /auth does.
from backend.app.api import models as _app_models  # noqa: F401
from backend.app.core.text import unstorable_reason
from backend.app.identity.base import AuthSession
from backend.app.identity.embedded import (
    CodeChallenge,
    PkceParamsInvalid,
    UserRecord,
    obfuscated,
    parse_code_challenge,
)
from backend.app.identity.tokens import AUDIENCE

from .errors import GoTrueCode, bad_request, validation_failed

__all__ = [
    "MAX_JSON_DEPTH",
    "AdminCreateBody",
    "AdminDeleteBody",
    "AdminUpdateBody",
    "GenerateLinkBody",
    "InviteBody",
    "OtpBody",
    "PasswordGrantBody",
    "PkceGrantBody",
    "RecoverBody",
    "RefreshGrantBody",
    "ResendBody",
    "SignUpBody",
    "UserUpdateBody",
    "VerifyBody",
    "checked_email",
    "code_challenge",
    "openapi_body",
    "parse_json_object",
    "read_body",
    "session_fields",
    "session_json",
    "user_json",
]

# The namespace of the identity ids below (GoTrue keeps identities in a table; one is derived).
_IDENTITY_NAMESPACE = uuid.UUID("6f1c1c1e-8e0b-4d8a-9a55-2f1c0c6f7a10")
_MAX_EMAIL_LENGTH = 255

M = TypeVar("M", bound=BaseModel)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _PkceBody(_Body):
    """A request that may start GoTrue's PKCE flow (both null: the implicit one)."""

    code_challenge: str | None = None
    code_challenge_method: str | None = None


class SignUpBody(_PkceBody):
    email: str | None = None
    phone: str | None = None
    password: str | None = None
    data: dict[str, Any] | None = None


class PasswordGrantBody(_Body):
    email: str | None = None
    phone: str | None = None
    password: str | None = None


class RefreshGrantBody(_Body):
    refresh_token: str | None = None


class PkceGrantBody(_Body):
    auth_code: str | None = None
    code_verifier: str | None = None


class UserUpdateBody(_PkceBody):
    nonce: str | None = None
    email: str | None = None
    phone: str | None = None
    password: str | None = None
    data: dict[str, Any] | None = None
    app_metadata: dict[str, Any] | None = None  # read to be refused: it is the admin's to write


class AdminCreateBody(_Body):
    email: str | None = None
    phone: str | None = None
    password: str | None = None
    email_confirm: bool = False
    user_metadata: dict[str, Any] | None = None
    app_metadata: dict[str, Any] | None = None
    ban_duration: str | None = None


class AdminUpdateBody(_Body):
    email: str | None = None
    phone: str | None = None
    password: str | None = None
    email_confirm: StrictBool = False
    phone_confirm: StrictBool = False
    user_metadata: dict[str, Any] | None = None
    app_metadata: dict[str, Any] | None = None
    ban_duration: str | None = None
    role: str | None = None


class InviteBody(_Body):
    email: str | None = None
    data: dict[str, Any] | None = None


class GenerateLinkBody(_Body):
    type: str | None = None
    email: str | None = None
    new_email: str | None = None
    password: str | None = None
    data: dict[str, Any] | None = None
    redirect_to: str | None = None


class AdminDeleteBody(_Body):
    should_soft_delete: bool = False


class RecoverBody(_PkceBody):
    email: str | None = None


class VerifyBody(_Body):
    type: str | None = None
    token: str | None = None
    token_hash: str | None = None
    email: str | None = None
    phone: str | None = None
    redirect_to: str | None = None


class OtpBody(_PkceBody):
    email: str | None = None
    phone: str | None = None
    channel: str | None = None
    create_user: StrictBool = True
    data: dict[str, Any] | None = None


class ResendBody(_PkceBody):
    type: str | None = None
    email: str | None = None
    phone: str | None = None


# Hashed, never stored: a NUL is a character like any other there (as on /auth and GoTrue).
_HASHED_ONLY = frozenset({"password"})
# Deeper than any metadata a client means to send, far shallower than Python's recursion limit.
MAX_JSON_DEPTH = 32


class _BadJson(ValueError):
    pass


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e999: JSON has no infinity, and no database stores one
        raise _BadJson(text)
    return number


def _non_finite(name: str) -> NoReturn:  # NaN, Infinity, -Infinity: not JSON at all
    raise _BadJson(name)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object: the one parser of every body under `/auth/v1`.

    Bounded, so that whatever it returns can be stored and served again as JSON: numbers are
    finite, nesting is at most `MAX_JSON_DEPTH` deep, and every string is storable (one check
    walks the value once, without recursion). An empty body is an empty object.

    Raises:
        GoTrueError: 400 `bad_json` (not a bounded JSON object) or `validation_failed` (text no
            database can store). No submitted value is echoed.
    """
    try:
        data = (
            json.loads(raw, parse_float=_finite, parse_constant=_non_finite) if raw.strip() else {}
        )
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise bad_request(GoTrueCode.BAD_JSON, "Could not parse request body as JSON") from None
    if not isinstance(data, dict):
        raise bad_request(GoTrueCode.BAD_JSON, "Could not parse request body as JSON")
    pending: list[tuple[Any, int, bool]] = [
        (value, 1, key in _HASHED_ONLY) for key, value in data.items()
    ]
    pending.extend((key, 1, False) for key in data)
    while pending:
        value, depth, hashed_only = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise bad_request(GoTrueCode.BAD_JSON, "Could not parse request body as JSON")
        if isinstance(value, str):
            if unstorable_reason(value, hashed_only=hashed_only):
                raise validation_failed("Text fields must be valid Unicode without NUL characters")
        elif isinstance(value, dict):
            pending.extend((item, depth + 1, False) for item in value.values())
            pending.extend((key, depth + 1, False) for key in value)
        elif isinstance(value, list):
            pending.extend((item, depth + 1, False) for item in value)
    return data


async def read_body(request: Request, model: type[M]) -> M:
    """The request's JSON body (`parse_json_object`) as `model`.

    Raises:
        GoTrueError: 400 `bad_json` or `validation_failed` (see `parse_json_object`, or a field
            of the wrong type).
    """
    data = parse_json_object(await request.body())
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = sorted({".".join(str(part) for part in error["loc"]) for error in exc.errors()})
        raise validation_failed(f"Invalid value for: {', '.join(fields)}") from None


def openapi_body(schema: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for a body a route parses itself (see `read_body`)."""
    return {
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": schema.model_json_schema()}},
        }
    }


def checked_email(email: str | None) -> str:
    """GoTrue's `validateEmail`: required, at most 255 characters, well formed; lower-cased."""
    if not email:
        raise validation_failed("An email address is required")
    if len(email) > _MAX_EMAIL_LENGTH:
        raise validation_failed("An email address is too long")
    try:
        email_validator.validate_email(email, check_deliverability=False)
    except email_validator.EmailNotValidError:
        raise validation_failed("Unable to validate email address: invalid format") from None
    return email.lower()


def code_challenge(body: _PkceBody) -> CodeChallenge | None:
    """GoTrue `validatePKCEParams`: the body's challenge, None for the implicit flow.

    Raises:
        GoTrueError: 400 `validation_failed` with GoTrue's message (never the value).
    """
    try:
        return parse_code_challenge(body.code_challenge, body.code_challenge_method)
    except PkceParamsInvalid as exc:
        raise validation_failed(exc.message) from None


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def user_json(
    user: UserRecord, *, confirmation_sent_at: datetime | None = None, identities: bool = True
) -> dict[str, Any]:
    """GoTrue's `models.User` as JSON (docs/gotrue-api.md §4), with its email identity (none for the
    stand-in user of a repeated sign-up, as GoTrue's `sanitizeUser`)."""
    confirmed = _time(user.email_confirmed_at) if user.email_confirmed_at else None
    last_sign_in = _time(user.last_sign_in_at) if user.last_sign_in_at else None
    identity: dict[str, Any] = {
        "identity_id": str(uuid.uuid5(_IDENTITY_NAMESPACE, user.id)),
        "id": user.id,
        "user_id": user.id,
        "identity_data": {
            "email": user.email,
            "email_verified": confirmed is not None,
            "phone_verified": False,
            "sub": user.id,
        },
        "provider": "email",
        "last_sign_in_at": last_sign_in,
        "created_at": _time(user.created_at),
        "updated_at": _time(user.updated_at),
        "email": user.email,
    }
    if user.deleted_at is not None:  # GoTrue `SoftDeleteUserIdentities`
        identity |= {"id": obfuscated(user.id, f"email:{user.id}"), "identity_data": {}}
        del identity["email"]
    body: dict[str, Any] = {
        "id": user.id,
        "aud": AUDIENCE,
        "role": AUDIENCE,
        "email": user.email,
        "phone": "",
        "app_metadata": user.app_metadata,
        "user_metadata": user.user_metadata,
        "identities": [identity] if identities else [],
        "created_at": _time(user.created_at),
        "updated_at": _time(user.updated_at),
        "is_anonymous": False,
    }
    # Only when set, as GoTrue's `omitempty` fields.
    if confirmed is not None:
        body["email_confirmed_at"] = confirmed
        body["confirmed_at"] = confirmed
    if last_sign_in is not None:
        body["last_sign_in_at"] = last_sign_in
    if user.banned_until is not None:  # set while banned, and after a ban ran out, as GoTrue
        body["banned_until"] = _time(user.banned_until)
    if user.invited_at is not None:
        body["invited_at"] = _time(user.invited_at)
    if user.deleted_at is not None:
        body["deleted_at"] = _time(user.deleted_at)
    if confirmation_sent_at is not None:
        body["confirmation_sent_at"] = _time(confirmation_sent_at)
    return body


def session_json(session: AuthSession, user: UserRecord) -> dict[str, Any]:
    """GoTrue's `AccessTokenResponse`. `expires_in` counts from now, as after a refresh."""
    return {**session_fields(session), "user": user_json(user)}


def session_fields(session: AuthSession) -> dict[str, Any]:
    """The session's part of `AccessTokenResponse`, as strings and numbers (what a redirect's
    fragment carries too, GoTrue `AsRedirectURL`)."""
    expires_at = session.access_token.expires_at
    now = int(datetime.now(UTC).timestamp())
    return {
        "access_token": session.access_token.token,
        "token_type": "bearer",
        "expires_in": max(1, expires_at - now),
        "expires_at": expires_at,
        "refresh_token": session.refresh_token,
    }
