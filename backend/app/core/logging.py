"""Logging with secrets removed before any handler sees a record.

Redaction happens in the log-record factory, not in one handler's filter, so it applies to every
logger (ours, uvicorn's, SQLAlchemy's) and every handler, including ones added later by a test or
a hosting platform. Our own code never logs a token or a password; this is the safety net for
what a library might print (an `Authorization` header in a debug line, a query string).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import Any

__all__ = [
    "SECURITY_LOGGER",
    "JsonFormatter",
    "account_fingerprint",
    "configure_logging",
    "install_redaction",
    "log_security_event",
    "redact",
]

_PATTERNS = [
    # Header-style secrets: "Authorization: Bearer x", "'cookie': 'a=b'", "set-cookie=...",
    # and the gateway's `apikey` (header or query): Supabase keys are bearer credentials.
    (
        re.compile(
            r"(?i)\b(authorization|cookie|set-cookie|x-csrf-token|apikey)(['\"]?\s*[:=]\s*['\"]?)"
            r"[^'\"\n]+"
        ),
        r"\1\2[REDACTED]",
    ),
    (re.compile(r"(?i)\bbearer\s+[\w.~+/=-]+"), "Bearer [REDACTED]"),
    # Named secrets in query strings, JSON or key=value text.
    (
        re.compile(
            r"(?i)\b(password|access_?token|refresh_?token|csrf_?token|sb_refresh_token|"
            r"myideas_csrf|token|token_hash|hashed_token|email_otp|nonce|auth_code|"
            r"code_verifier|code_challenge)"
            r"(['\"]?\s*[:=]\s*['\"]?)[^&'\",;\s}]+"
        ),
        r"\1\2[REDACTED]",
    ),
    # A PKCE auth code in a URL's query or fragment (`?code=`, GoTrue's redirect). Only there:
    # elsewhere `code` is an error code, which a log line should keep.
    (re.compile(r"(?i)([?&#]code=)[^&#'\"\s]+"), r"\1[REDACTED]"),
    # Anything shaped like a JWT.
    (re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]+"), "[REDACTED_JWT]"),
]


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# Keys whose value is a secret whatever it looks like (a Supabase key may be any string).
_SECRET_KEY = re.compile(
    r"(?i)^(authorization|cookie|set-cookie|x-csrf-token|apikey|password|"
    r"access_?token|refresh_?token|csrf_?token|sb_refresh_token|myideas_csrf|token|token_hash|"
    r"hashed_token|email_otp|nonce|auth_code|code_verifier|code_challenge)$"
)


def _redact_value(value: object, key: object = None) -> object:
    if isinstance(key, str) and _SECRET_KEY.match(key):
        return "[REDACTED]"
    if value is None or isinstance(value, int | float):
        return value
    return redact(str(value))


_installed = False


def install_redaction() -> None:
    """Wrap the log-record factory once per process so every record is redacted at creation."""
    global _installed
    if _installed:
        return
    _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        # Arguments are redacted one by one, keeping their positions: formatters such as
        # uvicorn's access formatter read `record.args` as a tuple.
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_value(value) for value in record.args)
        elif isinstance(record.args, dict):
            # A lone dict argument (`log.info("%s", headers)`): its secrets are found by key.
            record.args = {key: _redact_value(value, key) for key, value in record.args.items()}
        return record

    logging.setLogRecordFactory(factory)


# Attributes every LogRecord has; anything else on a record came from `extra=` and is a field.
_STANDARD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry |= {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRIBUTES}
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO") -> None:
    """Redaction plus JSON lines on stderr, for the `myideas serve` process."""
    install_redaction()
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)


# Security events (ASVS V16.3) go to one logger, so an operator can route or alert on them alone.
SECURITY_LOGGER = "backend.app.security"
_security = logging.getLogger(SECURITY_LOGGER)


def account_fingerprint(email_key: str) -> str:
    """A stable pseudonym of an account's normalised email, for log lines about sign-in attempts.

    The typed email is never logged on a failure: people paste their password into the email
    field, and a failed attempt may name someone else's address. The fingerprint still lets an
    operator group attempts on one account, or check a known address against them.
    """
    return hashlib.sha256(b"account:" + email_key.encode()).hexdigest()[:16]


def log_security_event(event: str, **fields: str | int | None) -> None:
    """One WARNING on the `backend.app.security` logger: the event, and who (`user_id`,
    `account`, `address`) and why (`reason`) as `extra` fields. Never pass a secret: callers
    give identifiers and error codes only."""
    _security.warning("security event: %s", event, extra={"event": event, **fields})
