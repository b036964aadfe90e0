"""How credentials travel: the bearer header, the cookies, and the CSRF double submit.

Browsers send cookies on their own, so any route that trusts a cookie can be driven by another
site. That is why the access token is read from `Authorization: Bearer` only, and why every
state-changing `/auth` route (the only ones that read the refresh cookie) also demands a CSRF token
that a script must have read from this API's own responses.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request
from starlette.responses import Response

from backend.app.core.errors import CsrfMismatch, CsrfMissing, OriginNotAllowed, Unauthorized

__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "REFRESH_COOKIE",
    "CookiePolicy",
    "CsrfProtector",
    "extract_bearer_token",
]

REFRESH_COOKIE = "sb_refresh_token"
CSRF_COOKIE = "myideas_csrf"
CSRF_HEADER = "X-CSRF-Token"

_COOKIES_NOT_ACCEPTED_HINT = (
    "This API reads the access token from the 'Authorization: Bearer <accessToken>' header only; "
    "cookies are not accepted on this route. Call it through the API client, which adds the header."
)


def extract_bearer_token(request: Request) -> str:
    """The access token from `Authorization: Bearer`, or a 401 that says what went wrong.

    Raises:
        Unauthorized: no header, another scheme, or an empty token. When the request carried
            cookies but no header, `details.hint` explains that cookies are not accepted here:
            that exact mistake (raw `fetch` with `credentials: "include"`) is what this API exists
            to make obvious.
    """
    authorization = request.headers.get("authorization")
    if not authorization:
        details = {"hint": _COOKIES_NOT_ACCEPTED_HINT} if "cookie" in request.headers else {}
        raise Unauthorized(details=details)
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthorized(
            details={"hint": "Use the Bearer scheme: 'Authorization: Bearer <token>'"}
        )
    token = token.strip()
    if not token:
        raise Unauthorized(token_was_sent=True)
    return token


@dataclass(frozen=True, slots=True)
class CookiePolicy:
    """The one place that sets and clears cookies, so a clear always matches its set.

    A cookie is only replaced or removed by a Set-Cookie with the same name, path and domain; a
    clear written elsewhere with another path leaves the old cookie alive in the browser.
    """

    secure: bool
    session_ttl_seconds: int
    domain: str | None = None
    path: str = "/"
    samesite: Literal["lax", "strict", "none"] = "lax"

    def set(self, response: Response, name: str, value: str, *, max_age: int | None = None) -> None:
        response.set_cookie(
            name,
            value,
            max_age=self.session_ttl_seconds if max_age is None else max_age,
            path=self.path,
            domain=self.domain,
            secure=self.secure,
            httponly=True,
            samesite=self.samesite,
        )

    def clear(self, response: Response, name: str) -> None:
        self.set(response, name, "", max_age=0)

    def set_refresh_token(self, response: Response, refresh_token: str) -> None:
        self.set(response, REFRESH_COOKIE, refresh_token)

    def clear_refresh_token(self, response: Response) -> None:
        self.clear(response, REFRESH_COOKIE)


class CsrfProtector:
    """Signed double submit.

    The CSRF cookie holds a random nonce (HttpOnly, so scripts cannot read it); the token handed to
    the page is an HMAC of that nonce under the server's secret. A request passes when its
    `X-CSRF-Token` header equals the HMAC of its cookie. Signing means a cookie planted by a
    sibling subdomain is useless without the matching token, which only this server can compute.
    """

    def __init__(self, *, secret: bytes, allowed_origins: list[str], cookies: CookiePolicy):
        self._secret = secret
        self._allowed_origins = frozenset(allowed_origins)
        self._cookies = cookies

    def token_for(self, nonce: str) -> str:
        digest = hmac.new(self._secret, b"csrf:" + nonce.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def check_origin(self, request: Request) -> None:
        """Raises OriginNotAllowed when the request names an origin that is not allowed.

        The API's own origin is allowed too: a same-origin request (the OpenAPI page at /docs)
        is not a cross-site one, and a browser cannot fake the Host it sends a request to.
        """
        origin = request.headers.get("origin")
        if origin is None or origin in self._allowed_origins:
            return
        if origin != f"{request.url.scheme}://{request.url.netloc}":
            raise OriginNotAllowed(details={"origin": origin})

    def verify(self, request: Request) -> None:
        """Raises CsrfMissing, CsrfMismatch or OriginNotAllowed unless the request may proceed."""
        self.check_origin(request)
        header = request.headers.get(CSRF_HEADER)
        nonce = request.cookies.get(CSRF_COOKIE)
        if not header or not nonce:
            missing = [part for part, value in (("header", header), ("cookie", nonce)) if not value]
            raise CsrfMissing(details={"missing": missing})
        if not hmac.compare_digest(header.encode(), self.token_for(nonce).encode()):
            raise CsrfMismatch()

    def current_or_new_token(self, request: Request, response: Response) -> str:
        """The token for the request's CSRF cookie, or a new cookie and its token if it has none."""
        nonce = request.cookies.get(CSRF_COOKIE)
        if not nonce:
            return self.issue(response)
        return self.token_for(nonce)

    def issue(self, response: Response) -> str:
        """A new nonce in the CSRF cookie, and its token for the response body."""
        nonce = secrets.token_urlsafe(32)
        self._cookies.set(response, CSRF_COOKIE, nonce)
        return self.token_for(nonce)
