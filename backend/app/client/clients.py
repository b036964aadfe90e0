"""`Client` and `AsyncClient`: typed calls of the API's routes over httpx.

Each route is described once (`_Call`: method, path, body, how to read the answer); the two
clients only send it, so they cannot drift apart. An error body raises `ApiError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, Literal, Self, TypeVar

import httpx

from backend.app.api.models import (
    CsrfOut,
    ItemList,
    ItemOut,
    LiveSessionOut,
    MeOut,
    MeUserOut,
    SessionListOut,
    SignUpOut,
    UserOut,
)
from backend.app.client.auth import PasswordAuth
from backend.app.client.errors import ApiError
from backend.app.core.security import CSRF_HEADER

__all__ = ["AsyncClient", "Client"]

T = TypeVar("T")
SignOutScope = Literal["local", "others", "global"]


@dataclass(frozen=True)
class _Call(Generic[T]):
    method: str
    path: str
    read: Callable[[Any], T]
    json: Any = field(default=None, repr=False)  # a password, at sign-up
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    # Routes that take no bearer token are sent without the client's auth: signing up must
    # not first sign in.
    public: bool = False

    def result(self, response: httpx.Response) -> T:
        if response.is_error:
            raise ApiError.from_response(response)
        return self.read(response.json() if response.content else None)


def _nothing(_body: Any) -> None:
    return None


def _csrf() -> _Call[str]:
    return _Call("GET", "/auth/csrf", lambda b: CsrfOut.model_validate(b).csrf_token, public=True)


def _sign_up(email: str, password: str, display_name: str | None, csrf: str) -> _Call[UserOut]:
    body: dict[str, Any] = {"email": email, "password": password}
    if display_name is not None:
        body["profile"] = {"displayName": display_name}
    return _Call(
        "POST",
        "/auth/signup",
        lambda b: SignUpOut.model_validate(b).user,
        json=body,
        headers={CSRF_HEADER: csrf},
        public=True,
    )


def _me() -> _Call[MeUserOut]:
    return _Call("GET", "/auth/me", lambda b: MeOut.model_validate(b).user)


def _sessions() -> _Call[list[LiveSessionOut]]:
    return _Call("GET", "/auth/sessions", lambda b: SessionListOut.model_validate(b).sessions)


def _sign_out(scope: SignOutScope) -> _Call[None]:
    # PasswordAuth adds the session's cookie and CSRF token to this one.
    return _Call("POST", "/auth/logout", _nothing, json={"scope": scope})


def _change_password(current: str, new: str) -> _Call[None]:
    body = {"currentPassword": current, "newPassword": new}
    return _Call("POST", "/auth/password", _nothing, json=body)


def _list_items() -> _Call[list[ItemOut]]:
    return _Call("GET", "/items", lambda b: ItemList.model_validate(b).items)


def _create_item(title: str, description: str) -> _Call[ItemOut]:
    body = {"title": title, "description": description}
    return _Call("POST", "/items", ItemOut.model_validate, json=body)


def _delete_item(item_id: str) -> _Call[None]:
    return _Call("DELETE", f"/items/{item_id}", _nothing)


class Client:
    """The API over a synchronous `httpx.Client` (`options` go to it: timeout, transport…).

    Args:
        base_url: where the API is served, e.g. `http://localhost:8000`.
        auth: how to sign in; without it only the public routes (`sign_up`) work.
    """

    def __init__(self, base_url: str, auth: PasswordAuth | None = None, **options: Any) -> None:
        self.auth = auth
        self._http = httpx.Client(base_url=base_url, auth=auth, **options)

    def __repr__(self) -> str:
        return f"Client(base_url={str(self._http.base_url)!r}, auth={self.auth!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: _Call[T]) -> T:
        response = self._http.request(
            call.method,
            call.path,
            json=call.json,
            headers=call.headers,
            auth=None if call.public else httpx.USE_CLIENT_DEFAULT,
        )
        return call.result(response)

    def sign_up(self, email: str, password: str, *, display_name: str | None = None) -> UserOut:
        """Create an account (does not sign in: the auth does that at the first call)."""
        return self._send(_sign_up(email, password, display_name, self._send(_csrf())))

    def sign_out(self, scope: SignOutScope = "local") -> None:
        """End this session (`local`), the user's others, or all of them (`global`)."""
        self._send(_sign_out(scope))

    def me(self) -> MeUserOut:
        return self._send(_me())

    def sessions(self) -> list[LiveSessionOut]:
        """The user's live sessions, newest first; `current` marks this one."""
        return self._send(_sessions())

    def change_password(self, current: str, new: str) -> None:
        """Change the password (other sessions end); the auth signs in with the new one."""
        self._send(_change_password(current, new))
        if self.auth is not None:
            self.auth.use_password(new)

    def list_items(self) -> list[ItemOut]:
        return self._send(_list_items())

    def create_item(self, title: str, description: str = "") -> ItemOut:
        return self._send(_create_item(title, description))

    def delete_item(self, item_id: str) -> None:
        self._send(_delete_item(item_id))


class AsyncClient:
    """The API over an `httpx.AsyncClient`; the same calls as `Client`, awaited."""

    def __init__(self, base_url: str, auth: PasswordAuth | None = None, **options: Any) -> None:
        self.auth = auth
        self._http = httpx.AsyncClient(base_url=base_url, auth=auth, **options)

    def __repr__(self) -> str:
        return f"AsyncClient(base_url={str(self._http.base_url)!r}, auth={self.auth!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: _Call[T]) -> T:
        response = await self._http.request(
            call.method,
            call.path,
            json=call.json,
            headers=call.headers,
            auth=None if call.public else httpx.USE_CLIENT_DEFAULT,
        )
        return call.result(response)

    async def sign_up(
        self, email: str, password: str, *, display_name: str | None = None
    ) -> UserOut:
        return await self._send(_sign_up(email, password, display_name, await self._send(_csrf())))

    async def sign_out(self, scope: SignOutScope = "local") -> None:
        await self._send(_sign_out(scope))

    async def me(self) -> MeUserOut:
        return await self._send(_me())

    async def sessions(self) -> list[LiveSessionOut]:
        return await self._send(_sessions())

    async def change_password(self, current: str, new: str) -> None:
        await self._send(_change_password(current, new))
        if self.auth is not None:
            self.auth.use_password(new)

    async def list_items(self) -> list[ItemOut]:
        return await self._send(_list_items())

    async def create_item(self, title: str, description: str = "") -> ItemOut:
        return await self._send(_create_item(title, description))

    async def delete_item(self, item_id: str) -> None:
        await self._send(_delete_item(item_id))
