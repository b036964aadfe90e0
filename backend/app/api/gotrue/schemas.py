"""GoTrue's request bodies, read leniently, and its user and session JSON.

The clients send fields a strict model would refuse (`gotrue_meta_security`, `code_challenge:
null`, a body on `DELETE`, GOTRUE.md §7), so unknown fields are ignored, as GoTrue's
`json.Decoder` ignores them. Bodies are parsed here, not by FastAPI, so that a malformed one is
GoTrue's 400 (`bad_json`, `validation_failed`), never this app's 422.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, TypeVar

import email_validator
from fastapi import Request
from pydantic import BaseModel, ConfigDict, ValidationError

# Imported for its effect too: it lets email-validator accept special-use domains, as /auth does.
from backend.app.api import models as _app_models  # noqa: F401
from backend.app.identity.base import AuthSession
from backend.app.identity.embedded import UserRecord

from .errors import GoTrueCode, bad_request, validation_failed

__all__ = [
    "AdminCreateBody",
    "AdminDeleteBody",
    "PasswordGrantBody",
    "RefreshGrantBody",
    "SignUpBody",
    "UserUpdateBody",
    "checked_email",
    "read_body",
    "session_json",
    "user_json",
]

AUDIENCE = "authenticated"
# The namespace of the identity ids below (GoTrue keeps identities in a table; one is derived).
_IDENTITY_NAMESPACE = uuid.UUID("6f1c1c1e-8e0b-4d8a-9a55-2f1c0c6f7a10")
_MAX_EMAIL_LENGTH = 255

M = TypeVar("M", bound=BaseModel)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SignUpBody(_Body):
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


class UserUpdateBody(_Body):
    email: str | None = None
    phone: str | None = None
    password: str | None = None
    data: dict[str, Any] | None = None


class AdminCreateBody(_Body):
    email: str | None = None
    phone: str | None = None
    password: str | None = None
    email_confirm: bool = False
    user_metadata: dict[str, Any] | None = None
    app_metadata: dict[str, Any] | None = None


class AdminDeleteBody(_Body):
    should_soft_delete: bool = False


# Hashed, never stored: a NUL is a character like any other there (as on /auth and GoTrue).
_HASHED_ONLY = frozenset({"password"})


def _storable(value: Any, *, hashed: bool = False) -> bool:
    """Text a database (or, for a password, the hash) can take: no lone surrogate (not UTF-8),
    and, unless only hashed, no U+0000 (PostgreSQL's text cannot hold it)."""
    if isinstance(value, str):
        if "\x00" in value and not hashed:
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_storable(key) and _storable(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_storable(item) for item in value)
    return True


async def read_body(request: Request, model: type[M]) -> M:
    """The request's JSON body as `model`; an empty body is an empty object.

    Raises:
        GoTrueError: 400 `bad_json` (not a JSON object) or `validation_failed` (a field of the
            wrong type, or text no database can store). No submitted value is echoed.
    """
    raw = await request.body()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError):
        raise bad_request(GoTrueCode.BAD_JSON, "Could not parse request body as JSON") from None
    if not isinstance(data, dict):
        raise bad_request(GoTrueCode.BAD_JSON, "Could not parse request body as JSON")
    if not all(_storable(value, hashed=key in _HASHED_ONLY) for key, value in data.items()):
        raise validation_failed("Text fields must be valid Unicode without NUL characters")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = sorted({".".join(str(part) for part in error["loc"]) for error in exc.errors()})
        raise validation_failed(f"Invalid value for: {', '.join(fields)}") from None


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


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def user_json(user: UserRecord) -> dict[str, Any]:
    """GoTrue's `models.User` as JSON (GOTRUE.md §4), with its email identity."""
    confirmed = _time(user.email_confirmed_at) if user.email_confirmed_at else None
    last_sign_in = _time(user.last_sign_in_at) if user.last_sign_in_at else None
    identity = {
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
    body: dict[str, Any] = {
        "id": user.id,
        "aud": AUDIENCE,
        "role": AUDIENCE,
        "email": user.email,
        "phone": "",
        "app_metadata": user.app_metadata,
        "user_metadata": user.user_metadata,
        "identities": [identity],
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
    return body


def session_json(session: AuthSession, user: UserRecord) -> dict[str, Any]:
    """GoTrue's `AccessTokenResponse`. `expires_in` counts from now, as after a refresh."""
    expires_at = session.access_token.expires_at
    now = int(datetime.now(UTC).timestamp())
    return {
        "access_token": session.access_token.token,
        "token_type": "bearer",
        "expires_in": max(1, expires_at - now),
        "expires_at": expires_at,
        "refresh_token": session.refresh_token,
        "user": user_json(user),
    }
