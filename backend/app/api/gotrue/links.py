"""Where GoTrue's mails link and where `GET /verify` sends the browser.

A mail asked for through `/auth/v1` carries GoTrue's `{{ .ConfirmationURL }}`:
`{JWT_ISSUER}/verify?token=…&type=…&redirect_to=…` (the issuer is this API's public URL, as a
Supabase project's `…/auth/v1`), and a 6-digit code beside it. `redirect_to` is kept only when
it is allowed (GoTrue's `GetReferrer`): an http(s) URL on `SITE_URL`'s origin or one of
`CORS_ORIGINS`, with no userinfo, backslash, whitespace or control character (which browsers
and this server could read as two different hosts); anything else becomes `SITE_URL`, so a
link can never send a session to a stranger's site.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from fastapi import Request

from backend.app.core.settings import Settings
from backend.app.identity.embedded import VerifyLinks

__all__ = ["allowed_redirect", "verify_links"]


# A backslash, whitespace or a control character: browsers (WHATWG URL) and `urlsplit` read
# `http://evil.example\@site/` differently (host `evil.example` vs `site`), and `urlsplit`
# silently drops tabs and newlines. Go's `url.Parse`, which GoTrue checks with, refuses these.
_AMBIGUOUS = re.compile(r"[\x00-\x20\x7f\\]")


def _origin(url: str) -> str | None:
    if _AMBIGUOUS.search(url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if "@" in parts.netloc:  # userinfo: no redirect needs it, and it reads as another host
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{parts.hostname.lower()}:{port or default}"


def allowed_redirect(requested: str | None, settings: Settings) -> str:
    """`requested` if its origin is SITE_URL's or a CORS origin, else SITE_URL."""
    if requested:
        origin = _origin(requested)
        allowed = {_origin(url) for url in (settings.site_url, *settings.cors_origins)}
        if origin is not None and origin in allowed:
            return requested
    return settings.site_url


def verify_links(request: Request, settings: Settings) -> VerifyLinks:
    """The links of a mail asked for by this request (`redirect_to` is in its query: both
    clients send it there)."""
    return VerifyLinks(
        verify_url=f"{settings.jwt_issuer.rstrip('/')}/verify",
        redirect_to=allowed_redirect(request.query_params.get("redirect_to"), settings),
    )
