"""A thin driver for the HTTP contract, so tests read as the flow they check."""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

PASSWORD = "correct horse battery staple"


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def signing_key_pem() -> str:
    """A new EC P-256 private key in PEM, as `JWT_PRIVATE_KEY` takes it."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def unique_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


@dataclass
class ApiUser:
    id: str
    email: str
    password: str
    access_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


class AuthApi:
    """Calls /auth the way the browser client does: CSRF token first, cookies in the jar."""

    def __init__(self, client: httpx.AsyncClient):
        self.client = client
        self.csrf_token: str | None = None

    @property
    def refresh_cookie(self) -> str | None:
        return self.client.cookies.get("sb_refresh_token")

    def put_refresh_cookie(self, value: str | None) -> None:
        """Replace the jar's refresh cookie, as a second tab or a thief holding `value` would.

        The CSRF token is bound to the refresh cookie, so the next call fetches the one that
        matches (as the browser client does after its `csrf_*` 403).
        """
        self.csrf_token = None
        self.client.cookies.delete("sb_refresh_token")
        if value is not None:
            domain = self.client.base_url.host
            domain = domain if "." in domain else f"{domain}.local"  # http.cookiejar's rule
            self.client.cookies.set("sb_refresh_token", value, domain=domain)

    async def fetch_csrf(self) -> str:
        response = await self.client.get("/auth/csrf")
        assert response.status_code == 200, response.text
        self.csrf_token = response.json()["csrfToken"]
        return self.csrf_token

    async def post(self, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        if self.csrf_token is None:
            await self.fetch_csrf()
        headers = {"X-CSRF-Token": self.csrf_token or "", **kwargs.pop("headers", {})}
        response = await self.client.post(path, json=json, headers=headers, **kwargs)
        if response.status_code == 200 and "csrfToken" in response.json():
            self.csrf_token = response.json()["csrfToken"]
        return response

    async def signup(
        self, email: str, password: str = PASSWORD, display_name: str | None = None
    ) -> httpx.Response:
        body: dict[str, Any] = {"email": email, "password": password}
        if display_name is not None:
            body["profile"] = {"displayName": display_name}
        return await self.post("/auth/signup", body)

    async def signin(self, email: str, password: str = PASSWORD) -> httpx.Response:
        return await self.post("/auth/signin", {"email": email, "password": password})

    async def refresh(self) -> httpx.Response:
        return await self.post("/auth/refresh")

    async def logout(self, **kwargs: Any) -> httpx.Response:
        return await self.post("/auth/logout", **kwargs)

    async def signed_in_user(self, display_name: str | None = "Ada") -> ApiUser:
        email = unique_email()
        signup = await self.signup(email, display_name=display_name)
        assert signup.status_code == 201, signup.text
        signin = await self.signin(email)
        assert signin.status_code == 200, signin.text
        body = signin.json()
        return ApiUser(
            id=body["user"]["id"], email=email, password=PASSWORD, access_token=body["accessToken"]
        )
