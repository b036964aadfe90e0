"""Bounds on what a request may carry, and whose address it comes from.

Request bodies are bounded by FastAPI's own `max_body_size` (set in `create_app`): a body that
grows past it while being read is refused with 413. A request that *declares* a larger
`Content-Length` is refused here, before any route runs, with the same error body (left to
Starlette, it would be a plain-text 413 that replaces whatever the route answered). Headers are
bounded here too, since uvicorn's default HTTP parser (httptools) sets no limit of its own: headers
that add up to more than `MAX_HEADER_BYTES` are answered 431. A proxy in front should bound both
at the socket as well (nginx: `client_max_body_size`, `large_client_header_buffers`).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from backend.app.core.errors import STATUS_BY_CODE, ErrorCode, error_body

__all__ = [
    "MAX_HEADER_BYTES",
    "MAX_USER_AGENT_LENGTH",
    "UNTRUSTED_FORWARDED",
    "RefusalRenderer",
    "RequestLimitsMiddleware",
    "client_address",
    "client_user_agent",
]

# Room for the cookies a developer's `localhost` collects from other apps, and far below harm.
MAX_HEADER_BYTES = 32 * 1024
UNTRUSTED_FORWARDED = "forwarded-untrusted"
# What a session keeps of its User-Agent: enough to tell browsers and devices apart in the list.
MAX_USER_AGENT_LENGTH = 256

# Another API's rendering of a refusal (GoTrue's, under /auth/v1), or None for the app's own.
RefusalRenderer = Callable[[Request, ErrorCode, str], Response | None]


class RequestLimitsMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_header_bytes: int = MAX_HEADER_BYTES,
        render_refusal: RefusalRenderer | None = None,
    ):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        self.render_refusal = render_refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self._refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> Response | None:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if sum(len(name) + len(value) for name, value in headers) > self.max_header_bytes:
            return self._refuse(
                scope,
                ErrorCode.HEADERS_TOO_LARGE,
                "The request headers are too large",
                {"maxBytes": self.max_header_bytes},
            )
        for name, value in headers:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                return self._refuse(
                    scope,
                    ErrorCode.PAYLOAD_TOO_LARGE,
                    "The request body is too large",
                    {"maxBytes": self.max_body_bytes},
                )
        return None

    def _refuse(
        self, scope: Scope, code: ErrorCode, message: str, details: dict[str, int]
    ) -> Response:
        if self.render_refusal is not None:
            rendered = self.render_refusal(Request(scope), code, message)
            if rendered is not None:
                return rendered
        return JSONResponse(error_body(code, message, details), status_code=STATUS_BY_CODE[code])


def client_address(request: Request, *, trusts_proxies: bool) -> str:
    """The address the per-address rate limit counts against.

    Args:
        trusts_proxies: `FORWARDED_ALLOW_IPS` is set, so the server (uvicorn reads the same
            variable) has put the real client's address from `X-Forwarded-For` into the request.
    """
    if not trusts_proxies and "x-forwarded-for" in request.headers:
        # uvicorn believes X-Forwarded-For from loopback by default and has then already put an
        # address the sender chose in place of the socket's. With no proxy configured the real
        # address is unknowable, so every such request shares one counter: rotating the header
        # gains an attacker nothing.
        return UNTRUSTED_FORWARDED
    return request.client.host if request.client else "unknown"


def client_user_agent(request: Request) -> str | None:
    """The request's User-Agent as a session records it (GET /auth/sessions shows it): control
    characters (C0, DEL, C1) dropped, whitespace trimmed, at most `MAX_USER_AGENT_LENGTH`
    characters; None when nothing is left. The client chose it, so it is a label, never proof."""
    raw = request.headers.get("user-agent")
    if raw is None:
        return None
    printable = "".join(ch for ch in raw if not _is_control(ch))
    cleaned = printable.strip()[:MAX_USER_AGENT_LENGTH].rstrip()
    return cleaned or None


def _is_control(ch: str) -> bool:
    code = ord(ch)
    return code < 0x20 or 0x7F <= code < 0xA0
