"""Request and response bodies. JSON is camelCase; Python stays snake_case."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints
from pydantic.alias_generators import to_camel

from backend.app.identity.passwords import MAX_PASSWORD_LENGTH

__all__ = [
    "CsrfOut",
    "ItemCreate",
    "ItemList",
    "ItemOut",
    "ItemUpdate",
    "MeOut",
    "OkOut",
    "SessionOut",
    "SignInIn",
    "SignUpIn",
    "SignUpOut",
]


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=10_000)]


class ProfileIn(CamelModel):
    display_name: DisplayName | None = None


class SignUpIn(CamelModel):
    email: EmailStr
    # The length policy is checked by the identity provider (422 `weak_password` with a reason),
    # so here the password is only a string.
    password: str = Field(json_schema_extra={"format": "password"})
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
    password: str = Field(max_length=MAX_PASSWORD_LENGTH, json_schema_extra={"format": "password"})

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


class OkOut(CamelModel):
    ok: bool = True


class ProfileOut(CamelModel):
    display_name: str | None


class MeUserOut(UserOut):
    profile: ProfileOut


class MeOut(CamelModel):
    user: MeUserOut


class ItemCreate(CamelModel):
    title: Title
    description: Description = ""


class ItemUpdate(CamelModel):
    title: Title | None = None
    description: Description | None = None


class ItemOut(CamelModel):
    id: str
    title: str
    description: str
    created_at: datetime
    updated_at: datetime


class ItemList(CamelModel):
    items: list[ItemOut]
