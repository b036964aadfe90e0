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

from backend.app.core.errors import (
    CsrfError,
    CsrfMismatch,
    CsrfMissing,
    OriginNotAllowed,
    Unauthorized,
)
from backend.app.core.logging import log_security_event
from backend.app.core.request_limits import client_address

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
    """Signed double submit, bound to the session (OWASP's "signed double-submit cookie").

    The CSRF cookie (HttpOnly, so scripts cannot read it) holds a random nonce; the token handed to
    the page is an HMAC of that nonce under the server's secret. A request passes when its
    `X-CSRF-Token` header equals the HMAC of its cookie's nonce. Signing means a cookie planted by
    a sibling subdomain is useless without the matching token, which only this server can compute.

    Once signed in, the cookie also carries the server's HMAC of the nonce and of the refresh
    cookie (`<nonce>.<binding>`), and a request that carries a refresh cookie passes only if that
    binding matches it. An attacker can get a valid nonce and token for himself (even bound to a
    session of his own) and plant the cookie, but he cannot bind his nonce to the victim's refresh
    token: a planted pair stops working at sign-in. The binding follows the refresh cookie at every
    refresh while the nonce, and so the page's token, stays: other tabs keep a working token.

    Fetch Metadata comes first: a browser says `Sec-Fetch-Site: cross-site` on a request another
    site started, and no legitimate caller of a state-changing route does that.
    """

    def __init__(
        self,
        *,
        secret: bytes,
        allowed_origins: list[str],
        cookies: CookiePolicy,
        trusts_proxies: bool = False,
    ):
        self._secret = secret
        self._allowed_origins = frozenset(allowed_origins)
        self._cookies = cookies
        self._trusts_proxies = trusts_proxies  # only to name the client in a refusal's log line

    def _mac(self, message: bytes) -> str:
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def token_for(self, nonce: str) -> str:
        """The token the page sends for a CSRF nonce."""
        return self._mac(b"csrf:" + nonce.encode())

    def cookie_value(self, nonce: str, refresh_token: str | None) -> str:
        """The CSRF cookie: the nonce, bound to the refresh token when there is one."""
        if not refresh_token:
            return nonce
        # The refresh token's digest is what is signed: the token itself never leaves its cookie.
        session = hashlib.sha256(refresh_token.encode()).hexdigest()
        binding = self._mac(b"csrf-session:" + nonce.encode() + b"|" + session.encode())
        return f"{nonce}.{binding}"

    def _bound_nonce(self, request: Request) -> str | None:
        """The nonce of the request's CSRF cookie if its binding fits the request's refresh
        cookie (or there is no refresh cookie); None otherwise."""
        value = request.cookies.get(CSRF_COOKIE)
        if not value:
            return None
        nonce = value.partition(".")[0]
        refresh_token = request.cookies.get(REFRESH_COOKIE) or None
        if refresh_token is None:
            return nonce
        expected = self.cookie_value(nonce, refresh_token)
        return nonce if hmac.compare_digest(value.encode(), expected.encode()) else None

    def _origin_allowed(self, request: Request, origin: str) -> bool:
        return (
            origin in self._allowed_origins
            or origin == f"{request.url.scheme}://{request.url.netloc}"
        )

    def check_origin(self, request: Request) -> None:
        """Raises OriginNotAllowed when the request names an origin that is not allowed.

        The API's own origin is allowed too: a same-origin request (the OpenAPI page at /docs)
        is not a cross-site one, and a browser cannot fake the Host it sends a request to.
        """
        origin = request.headers.get("origin")
        if origin is not None and not self._origin_allowed(request, origin):
            raise OriginNotAllowed(details={"origin": origin})

    def check_fetch_metadata(self, request: Request) -> None:
        """Raises OriginNotAllowed for a request a browser says another site started.

        `cross-site` is refused even without an `Origin` header (an old or privacy-stripped
        one). `same-site` covers sibling subdomains, which are another origin: allowed only with
        an `Origin` that is itself allowed (browsers send one on every POST). `same-origin`,
        `none` (typed by the user) and no header at all (not a browser) go on to the CSRF token.
        """
        site = request.headers.get("sec-fetch-site")
        if site == "cross-site":
            raise OriginNotAllowed(details={"secFetchSite": site})
        if site == "same-site":
            origin = request.headers.get("origin")
            if origin is None or not self._origin_allowed(request, origin):
                raise OriginNotAllowed(details={"secFetchSite": site})

    def verify(self, request: Request) -> None:
        """Raises CsrfMissing, CsrfMismatch or OriginNotAllowed unless the request may proceed;
        each refusal is logged as a security event (the route and the client's address)."""
        try:
            self._verify(request)
        except CsrfError as exc:
            log_security_event(
                "csrf_refused",
                reason=exc.code,
                path=request.url.path,
                address=client_address(request, trusts_proxies=self._trusts_proxies),
            )
            raise

    def _verify(self, request: Request) -> None:
        self.check_fetch_metadata(request)
        self.check_origin(request)
        header = request.headers.get(CSRF_HEADER)
        cookie = request.cookies.get(CSRF_COOKIE)
        if not header or not cookie:
            missing = [
                part for part, value in (("header", header), ("cookie", cookie)) if not value
            ]
            raise CsrfMissing(details={"missing": missing})
        nonce = self._bound_nonce(request)
        if nonce is None or not hmac.compare_digest(
            header.encode(), self.token_for(nonce).encode()
        ):
            raise CsrfMismatch()

    def current_or_new_token(self, request: Request, response: Response) -> str:
        """`GET /auth/csrf`: the token of the request's CSRF cookie, or a new cookie and its token
        if it has none or one bound to another refresh cookie. An existing nonce is never bound
        anew here: a sibling site could plant its own and have the browser call this route."""
        nonce = self._bound_nonce(request)
        if nonce is None:
            return self.issue(response, refresh_token=request.cookies.get(REFRESH_COOKIE))
        return self.token_for(nonce)

    def follow_refresh(self, request: Request, response: Response, refresh_token: str) -> str:
        """After a refresh (the request passed `verify`): the same nonce, bound to the new refresh
        cookie, so every tab's token keeps working. Returns that token."""
        nonce = self._bound_nonce(request)
        if nonce is None:  # not reached through `verify`; start afresh
            return self.issue(response, refresh_token=refresh_token)
        self._cookies.set(response, CSRF_COOKIE, self.cookie_value(nonce, refresh_token))
        return self.token_for(nonce)

    def issue(self, response: Response, *, refresh_token: str | None = None) -> str:
        """A new nonce in the CSRF cookie (bound to `refresh_token`, the refresh cookie this
        response sets, if any), and its token for the response body."""
        nonce = secrets.token_urlsafe(32)
        self._cookies.set(response, CSRF_COOKIE, self.cookie_value(nonce, refresh_token))
        return self.token_for(nonce)
