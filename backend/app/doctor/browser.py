"""Checks of what the browser will do: CORS, the URL the SPA calls, the refresh cookie.

Plain functions of the configuration, the address the API serves on and the SPA's origin.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from backend.app.core.security import CookiePolicy
from backend.app.core.settings import PROJECT_ROOT, Settings
from backend.app.doctor.checks import Check, Status

__all__ = [
    "FRONTEND_CONFIG",
    "check_api_base_url",
    "check_cookies",
    "check_cors",
    "cookie_policy",
    "read_api_base_url",
    "split_url",
]

FRONTEND_CONFIG = PROJECT_ROOT / "frontend" / "src" / "config.ts"

_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
_ANY_ADDRESS = {"0.0.0.0", "::", ""}  # noqa: S104 -- names compared, nothing is bound here
_DEFAULT_PORTS = {"http": 80, "https": 443}


def split_url(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts


def _port(parts: SplitResult) -> int:
    return parts.port or _DEFAULT_PORTS[parts.scheme]


def _origin(parts: SplitResult) -> str:
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    port = "" if parts.port in (None, _DEFAULT_PORTS[parts.scheme]) else f":{parts.port}"
    return f"{parts.scheme}://{host}{port}"


def _is_loopback(host: str) -> bool:
    return host in _LOOPBACK_NAMES or host.endswith(".localhost") or host.startswith("127.")


def _twin(origin: str) -> str | None:
    """The same origin with `localhost` and `127.0.0.1` swapped, if it names one of them."""
    for a, b in (("//localhost", "//127.0.0.1"), ("//127.0.0.1", "//localhost")):
        if a in origin:
            return origin.replace(a, b, 1)
    return None


def _site(parts: SplitResult) -> str:
    """Scheme and registrable domain, as browsers compare sites for SameSite.

    Without the Public Suffix List this takes the last two labels of a name, which is right for
    `app.example.com` / `api.example.com` and wrong for suffixes such as `co.uk` or `github.io`.
    """
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
        domain = host
    except ValueError:
        domain = ".".join(host.split(".")[-2:])
    return f"{parts.scheme}://{domain}"


def check_cors(origins: Sequence[str], spa_origin: str | None) -> list[Check]:
    """`CORS_ORIGINS` is a list of exact origins and holds the SPA's (when it is known)."""
    checks: list[Check] = []
    if "*" in origins:
        checks.append(
            Check(
                "cors",
                Status.FAIL,
                "CORS_ORIGINS contains '*': the app refuses to start, since the refresh cookie "
                "makes every call credentialed and '*' would let any site read signed-in answers",
                "List the SPA's exact origins: CORS_ORIGINS=http://localhost:5173",
            )
        )
    for origin in (origin for origin in origins if origin != "*"):
        parts = split_url(origin)
        if parts is None:
            problem = "is not an http(s) origin"
            fix = "Write scheme://host[:port], e.g. http://localhost:5173"
        elif parts.path or parts.query or parts.fragment or parts.username is not None:
            what = "a trailing slash" if parts.path == "/" else "a path"
            problem = f"has {what}; a browser's Origin header never does, so it never matches"
            fix = f"Write it as {_origin(parts)}"
        elif parts.port == _DEFAULT_PORTS[parts.scheme]:
            problem = "names the default port; a browser's Origin header leaves it out"
            fix = f"Write it as {_origin(parts)}"
        else:
            continue
        checks.append(Check("cors", Status.FAIL, f"CORS_ORIGINS entry {origin!r} {problem}", fix))
    if spa_origin is not None and spa_origin not in origins:
        twin = _twin(spa_origin)
        if twin in origins:
            message = (
                f"the SPA's origin {spa_origin} is not in CORS_ORIGINS, only {twin}: a browser "
                "treats localhost and 127.0.0.1 as different origins (and different sites)"
            )
        else:
            message = (
                f"the SPA's origin {spa_origin} is not in CORS_ORIGINS ({', '.join(origins)}): "
                "the browser hides every answer from it (a CORS error in the console) and the "
                "/auth routes refuse it with 403 origin_not_allowed"
            )
        checks.append(
            Check(
                "cors",
                Status.FAIL,
                message,
                f"Add it: CORS_ORIGINS={','.join([*origins, spa_origin])} (or open the SPA at an "
                "origin already listed).",
            )
        )
    if not checks:
        listed = ", ".join(origins) or "none"
        known = f"; the SPA's origin {spa_origin} is one of them" if spa_origin else ""
        checks.append(Check("cors", Status.OK, f"allowed origins: {listed}{known}"))
    return checks


_URL_LITERAL = re.compile(r"""["'`](https?://[^"'`\s]+)["'`]""")
_DEFAULT_LITERAL = re.compile(r"""DEFAULT_API_BASE_URL\s*=\s*["'`](https?://[^"'`\s]+)["'`]""")


def read_api_base_url(config_js: Path) -> str | None:
    """The API base URL written in the SPA's `config.ts` (its default, without `?api=`)."""
    try:
        text = config_js.read_text(encoding="utf-8")
    except OSError:
        return None
    match = _DEFAULT_LITERAL.search(text) or _URL_LITERAL.search(text)
    return match.group(1).rstrip("/") if match else None


def check_api_base_url(
    api_base_url: str | None, *, host: str, port: int, source: Path = FRONTEND_CONFIG
) -> list[Check]:
    """The SPA calls the address and port the API serves on."""
    if api_base_url is None:
        return [
            Check(
                "api url",
                Status.WARN,
                f"no API base URL found in {source}: cannot compare it with {host}:{port}",
                'Define DEFAULT_API_BASE_URL = "http://localhost:8000" in frontend/src/config.ts.',
            )
        ]
    parts = split_url(api_base_url)
    if parts is None:
        return [
            Check(
                "api url",
                Status.FAIL,
                f"{source} calls {api_base_url!r}, which is not an http(s) URL",
                "Write it as http://host:port",
            )
        ]
    base_host, base_port = parts.hostname or "", _port(parts)
    serves_here = f"http://{host}:{port}"
    listens_everywhere = host in _ANY_ADDRESS
    if not _is_loopback(base_host):
        if listens_everywhere and base_port == port and parts.scheme == "http":
            return [Check("api url", Status.OK, f"the SPA calls {api_base_url}; API on {host}")]
        return [
            Check(
                "api url",
                Status.WARN,
                f"the SPA calls {api_base_url}, the API listens on {serves_here}: that works "
                f"only through a proxy at {_origin(parts)} that forwards to {host}:{port}",
                "Check the proxy, or point DEFAULT_API_BASE_URL in frontend/src/config.ts at "
                "the API.",
            )
        ]
    checks: list[Check] = []
    if not (listens_everywhere or _is_loopback(host)):
        checks.append(
            Check(
                "api url",
                Status.FAIL,
                f"the SPA calls {api_base_url} (this machine's loopback), but the API listens "
                f"on {host} only",
                f"Serve with --host 127.0.0.1, or point the SPA at http://{host}:{port}.",
            )
        )
    if base_port != port:
        checks.append(
            Check(
                "api url",
                Status.FAIL,
                f"the SPA calls port {base_port} ({api_base_url}), the API serves on port "
                f"{port}: every call fails with a network error",
                f"Serve with --port {base_port}, or set DEFAULT_API_BASE_URL to "
                f"http://{base_host}:{port} in {source} (or open the SPA with "
                f"?api=http://{base_host}:{port}).",
            )
        )
    if parts.scheme == "https":
        checks.append(
            Check(
                "api url",
                Status.FAIL,
                f"the SPA calls {api_base_url} over https, but `myideas serve` speaks plain http",
                "Use http:// for a local API, or put a TLS proxy in front.",
            )
        )
    if not checks:
        note = ""
        if base_host != host and not listens_everywhere:
            note = f" ({base_host} reaches {host}: both are this machine's loopback)"
        checks.append(
            Check("api url", Status.OK, f"the SPA calls {api_base_url}; API on {serves_here}{note}")
        )
    return checks


def cookie_policy(settings: Settings) -> CookiePolicy:
    """The refresh cookie's policy, as `start_services` builds it (Secure in production)."""
    return CookiePolicy(
        secure=settings.is_production, session_ttl_seconds=settings.session_ttl_seconds
    )


def check_cookies(
    policy: CookiePolicy, *, spa_origin: str | None, api_base_url: str | None
) -> list[Check]:
    """The browser stores the refresh cookie and sends it back on the SPA's calls to the API."""
    checks: list[Check] = []
    flags = (
        f"HttpOnly; SameSite={policy.samesite.capitalize()}{'; Secure' if policy.secure else ''}"
    )
    if policy.samesite == "none" and not policy.secure:
        checks.append(
            Check(
                "cookies",
                Status.FAIL,
                "SameSite=None without Secure: browsers reject such a cookie, so the refresh "
                "cookie is never stored and every reload signs out",
                "Use SameSite=Lax (the default) with the SPA and API on one site, or Secure "
                "with https.",
            )
        )
    api = split_url(api_base_url) if api_base_url else None
    if api is not None and policy.secure and api.scheme == "http":
        if _is_loopback(api.hostname or ""):
            checks.append(
                Check(
                    "cookies",
                    Status.WARN,
                    f"the cookie is Secure and the API is plain {_origin(api)}: Chrome and "
                    "Firefox accept Secure cookies from localhost, Safari does not",
                    "Use ENVIRONMENT=development locally, or https.",
                )
            )
        else:
            checks.append(
                Check(
                    "cookies",
                    Status.FAIL,
                    f"the cookie is Secure (production) and the API is plain {_origin(api)}: the "
                    "browser drops a Secure cookie set over http, so every reload signs out",
                    "Serve the API over https (TLS at the proxy), and call it with https:// "
                    "from the SPA.",
                )
            )
    spa = split_url(spa_origin) if spa_origin else None
    if api is not None and spa is not None and _site(spa) != _site(api):
        twins = {spa.hostname, api.hostname} == {"localhost", "127.0.0.1"}
        why = (
            "localhost and 127.0.0.1 are different sites to a browser"
            if twins
            else f"{_site(spa)} and {_site(api)} are different sites"
        )
        fix = (
            "Serve both under one site: open the SPA with the API's host name (both localhost "
            "or both 127.0.0.1); in production put the API on a subdomain of the SPA's domain "
            "(app.example.com and api.example.com), or behind the SPA's origin on a path "
            "(/api) through the proxy."
        )
        if policy.samesite == "none" and policy.secure:
            checks.append(
                Check(
                    "cookies",
                    Status.WARN,
                    f"the SPA ({_origin(spa)}) and the API ({_origin(api)}) are on different "
                    f"sites ({why}): the refresh cookie is a third-party cookie, which Safari "
                    "blocks and Chrome blocks when third-party cookies are off",
                    fix,
                )
            )
        else:
            checks.append(
                Check(
                    "cookies",
                    Status.FAIL,
                    f"the SPA ({_origin(spa)}) and the API ({_origin(api)}) are on different "
                    f"sites ({why}): a SameSite={policy.samesite.capitalize()} cookie is not sent "
                    "on the SPA's calls to the API, so POST /auth/refresh never gets it and "
                    "every reload signs out",
                    fix,
                )
            )
    if not checks:
        where = ""
        if spa is not None and api is not None:
            where = f"; the SPA and the API are on one site ({_site(spa)}), so it is sent"
        checks.append(Check("cookies", Status.OK, f"the refresh cookie is {flags}{where}"))
    return checks
