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

    The CSRF cookie holds a random nonce (HttpOnly, so scripts cannot read it); the token handed to
    the page is an HMAC, under the server's secret, of that nonce and of the refresh cookie the
    request carries (none before sign-in). A request passes when its `X-CSRF-Token` header equals
    the HMAC of its own cookies. Signing means a cookie planted by a sibling subdomain is useless
    without the matching token, which only this server can compute; binding to the refresh cookie
    means a cookie/token pair an attacker obtained for himself and planted before the victim signs
    in stops working at sign-in, because the attacker never sees the victim's refresh token.

    The refresh cookie rotates at every refresh, so the token does too: signin and refresh bodies
    carry the new one, and `GET /auth/csrf` answers the token of the cookies the browser holds now
    (the browser client fetches it again after a `csrf_*` 403, once).

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

    def token_for(self, nonce: str, refresh_token: str | None = None) -> str:
        """The token of a CSRF nonce, bound to the refresh token when there is one."""
        message = b"csrf:" + nonce.encode()
        if refresh_token:
            # The refresh token's digest, not the token: it is the only secret input that binds.
            binding = hashlib.sha256(refresh_token.encode()).hexdigest()
            message += b"|session:" + binding.encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

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
        nonce = request.cookies.get(CSRF_COOKIE)
        if not header or not nonce:
            missing = [part for part, value in (("header", header), ("cookie", nonce)) if not value]
            raise CsrfMissing(details={"missing": missing})
        expected = self.token_for(nonce, request.cookies.get(REFRESH_COOKIE) or None)
        if not hmac.compare_digest(header.encode(), expected.encode()):
            raise CsrfMismatch()

    def current_or_new_token(
        self, request: Request, response: Response, *, refresh_token: str | None = None
    ) -> str:
        """The token for the request's CSRF cookie (or a new cookie if it has none), bound to
        `refresh_token` if given (the cookie this response sets), else to the request's."""
        nonce = request.cookies.get(CSRF_COOKIE)
        if not nonce:
            return self.issue(response, refresh_token=refresh_token)
        if refresh_token is None:
            refresh_token = request.cookies.get(REFRESH_COOKIE) or None
        return self.token_for(nonce, refresh_token)

    def issue(self, response: Response, *, refresh_token: str | None = None) -> str:
        """A new nonce in the CSRF cookie, and its token (bound to `refresh_token`, the refresh
        cookie this response sets, if any) for the response body."""
        nonce = secrets.token_urlsafe(32)
        self._cookies.set(response, CSRF_COOKIE, nonce)
        return self.token_for(nonce, refresh_token)
