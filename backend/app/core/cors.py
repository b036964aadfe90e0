"""CORS for the SPA's origins, with credentials.

Starlette's middleware answers a refused preflight with 400 but still attaches its
`Access-Control-Allow-*` headers; a refusal here carries none, so no reader can mistake it for a
partial grant.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import PlainTextResponse, Response

__all__ = ["ALLOWED_HEADERS", "ALLOWED_METHODS", "CredentialedCORSMiddleware"]

ALLOWED_HEADERS = ["Authorization", "Content-Type", "X-CSRF-Token"]
ALLOWED_METHODS = ["GET", "POST", "PATCH", "DELETE", "OPTIONS"]


class CredentialedCORSMiddleware(CORSMiddleware):
    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code >= 400:
            return PlainTextResponse(response.body, status_code=response.status_code)
        return response
