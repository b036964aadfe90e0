"""CORS for the SPA's origins, with credentials.

Starlette's middleware answers a refused preflight with 400 but still attaches its
`Access-Control-Allow-*` headers; a refusal here carries none, so no reader can mistake it for a
partial grant.

With `GOTRUE_API_ENABLED`, paths under `/auth/v1` (and only those) also admit the headers
supabase-js sends (`apikey`, `x-client-info`, `x-supabase-api-version`), the method `PUT`
(`PUT /user`), and expose the headers GoTrue exposes. The rest of the API keeps its short list:
a header no route reads is a header no preflight should admit.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "ALLOWED_HEADERS",
    "ALLOWED_METHODS",
    "GOTRUE_ALLOWED_HEADERS",
    "GOTRUE_EXPOSED_HEADERS",
    "CredentialedCORSMiddleware",
    "PrefixCORSMiddleware",
    "cors_options",
]

ALLOWED_HEADERS = ["Authorization", "Content-Type", "X-CSRF-Token"]
ALLOWED_METHODS = ["GET", "POST", "PATCH", "DELETE", "OPTIONS"]
GOTRUE_PREFIX = "/auth/v1"
# GoTrue's own list (`internal/api/api.go`) plus the gateway's `apikey`.
GOTRUE_ALLOWED_HEADERS = [
    *ALLOWED_HEADERS,
    "apikey",
    "X-Client-Info",
    "X-Supabase-Api-Version",
]
GOTRUE_ALLOWED_METHODS = [*ALLOWED_METHODS, "PUT"]
GOTRUE_EXPOSED_HEADERS = ["X-Total-Count", "Link", "X-Supabase-Api-Version"]


class CredentialedCORSMiddleware(CORSMiddleware):
    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code >= 400:
            return PlainTextResponse(response.body, status_code=response.status_code)
        return response


class PrefixCORSMiddleware:
    """Two credentialed CORS policies: `prefix_options` over `options` under `prefix`, and
    `options` everywhere else."""

    def __init__(
        self, app: ASGIApp, *, prefix: str, prefix_options: dict[str, Any], **options: Any
    ):
        self._prefix = prefix
        self._default = CredentialedCORSMiddleware(app, **options)
        self._prefixed = CredentialedCORSMiddleware(app, **(options | prefix_options))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        under = path == self._prefix or path.startswith(self._prefix + "/")
        await (self._prefixed if under else self._default)(scope, receive, send)


def cors_options(origins: list[str], *, gotrue_api: bool) -> dict[str, Any]:
    """`PrefixCORSMiddleware`'s keyword arguments: the GoTrue policy under `/auth/v1` only
    when that API is served (the JWKS alone needs nothing more than the app's policy)."""
    prefix_options: dict[str, Any] = {}
    if gotrue_api:
        prefix_options = {
            "allow_methods": GOTRUE_ALLOWED_METHODS,
            "allow_headers": GOTRUE_ALLOWED_HEADERS,
            "expose_headers": GOTRUE_EXPOSED_HEADERS,
        }
    return {
        "prefix": GOTRUE_PREFIX,
        "prefix_options": prefix_options,
        "allow_origins": origins,
        "allow_credentials": True,
        "allow_methods": ALLOWED_METHODS,
        "allow_headers": ALLOWED_HEADERS,
    }
