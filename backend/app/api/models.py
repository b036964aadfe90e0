"""Request and response bodies. JSON is camelCase; Python stays snake_case."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import email_validator
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import SkipJsonSchema

from backend.app.core.text import unstorable_reason
from backend.app.identity.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH

__all__ = [
    "CsrfOut",
    "EmailIn",
    "HealthOut",
    "ItemCreate",
    "ItemList",
    "ItemOut",
    "ItemUpdate",
    "LiveSessionOut",
    "LogoutIn",
    "MeOut",
    "OkOut",
    "PasswordChangeIn",
    "PasswordResetIn",
    "SessionListOut",
    "SessionOut",
    "SignInIn",
    "SignUpIn",
    "SignUpOut",
]


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


# email-validator refuses special-use domains (`.test`, `.local`, `.invalid`…) as undeliverable.
# This service sends no mail, GoTrue accepts them, and so does the OpenAPI `email` format: the
# library documents this list as the way to allow them.
email_validator.SPECIAL_USE_DOMAIN_NAMES.clear()


def _encodable(value: str) -> str:
    if reason := unstorable_reason(value, hashed_only=True):
        raise ValueError(reason)
    return value


def _storable(value: str) -> str:
    if reason := unstorable_reason(value):
        raise ValueError(reason)
    return value


# Every string a body carries to the database is checked here, before any SQL; the pattern
# publishes the NUL rule in the schema too.
Storable = AfterValidator(_storable)
NoNul = Field(json_schema_extra={"pattern": "^[^\\x00]*$"})
DisplayName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), Storable, NoNul
]
Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Storable, NoNul
]
Description = Annotated[str, StringConstraints(max_length=10_000), Storable, NoNul]
# NUL is fine in a password: it is hashed, never stored, and counts like any other character.
Password = Annotated[
    str, AfterValidator(_encodable), Field(json_schema_extra={"format": "password"})
]


class ProfileIn(CamelModel):
    display_name: DisplayName | None = None


class SignUpIn(CamelModel):
    email: EmailStr
    # The length policy is checked by the identity provider (422 `weak_password` with a reason),
    # so here it is only published in the schema, not enforced as a `validation_error`.
    password: Annotated[
        Password,
        Field(
            json_schema_extra={"minLength": MIN_PASSWORD_LENGTH, "maxLength": MAX_PASSWORD_LENGTH}
        ),
    ]
    profile: ProfileIn | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "email": "ada@example.com",
                    "password": "correct horse battery staple",
                    "profile": {"displayName": "Ada"},
                }
            ]
        }
    )


class SignInIn(CamelModel):
    email: EmailStr
    password: Annotated[Password, Field(max_length=MAX_PASSWORD_LENGTH)]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"email": "ada@example.com", "password": "correct horse battery staple"}]
        }
    )


class UserOut(CamelModel):
    id: str
    email: str


class SignUpOut(CamelModel):
    user: UserOut


class SessionOut(CamelModel):
    """Signin and refresh. The refresh token is in the `sb_refresh_token` cookie, never here."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    expires_at: int
    csrf_token: str
    user: UserOut


class CsrfOut(CamelModel):
    csrf_token: str


class PasswordChangeIn(CamelModel):
    current_password: Annotated[Password, Field(max_length=MAX_PASSWORD_LENGTH)]
    # The policy is the provider's (422 weak_password with a reason), as at sign-up.
    new_password: Password


class EmailIn(CamelModel):
    email: EmailStr


class TokenIn(CamelModel):
    # Tokens are 43 characters (32 bytes, base64url); a longer one is not ours.
    token: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class EmailChangeIn(CamelModel):
    new_email: EmailStr
    current_password: Annotated[Password, Field(max_length=MAX_PASSWORD_LENGTH)]


class ConfirmedUserOut(UserOut):
    email_confirmed: bool


class ConfirmedOut(CamelModel):
    user: ConfirmedUserOut


class PasswordResetIn(CamelModel):
    # Tokens are 43 characters (32 bytes, base64url); a longer one is not ours.
    token: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    password: Password


class LogoutIn(CamelModel):
    """Which sessions a sign-out ends: this one (`local`), the user's others, or all of them."""

    scope: Literal["local", "others", "global"] = "local"

    # Logout took no body before `scope`: a client that sends other fields keeps working.
    model_config = ConfigDict(extra="ignore")


class LiveSessionOut(CamelModel):
    id: str
    created_at: datetime
    last_active_at: datetime
    user_agent: str | None
    current: bool


class SessionListOut(CamelModel):
    sessions: list[LiveSessionOut]


class OkOut(CamelModel):
    ok: bool = True


class ProfileOut(CamelModel):
    display_name: str | None


class MeUserOut(UserOut):
    email_confirmed: bool
    profile: ProfileOut


class MeOut(CamelModel):
    user: MeUserOut


class ItemCreate(CamelModel):
    title: Title
    description: Description = ""


class ItemUpdate(CamelModel):
    """Only the fields sent change; a field may be left out but not set to null (both columns
    are required). `SkipJsonSchema` keeps null out of the published schema too."""

    title: Title | SkipJsonSchema[None] = None
    description: Description | SkipJsonSchema[None] = None

    @field_validator("title", "description", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may be left out, but not null")
        return value


class ItemOut(CamelModel):
    id: str
    title: str
    description: str
    created_at: datetime
    updated_at: datetime


class ItemList(CamelModel):
    items: list[ItemOut]


class HealthOut(CamelModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok"]
    rate_limit_store: Literal["ok", "not_configured", "down"]
