"""The one rule of what text from outside may be stored, for every way text comes in (the
`/auth` models, GoTrue's bodies and metadata, names a provider reports)."""

from __future__ import annotations

__all__ = ["unstorable_reason"]


def unstorable_reason(text: str, *, hashed_only: bool = False) -> str | None:
    """Why `text` cannot be stored, or None when it can.

    JSON can carry lone surrogates ("\\ud800"), which no UTF-8 database or hash function takes;
    PostgreSQL's text cannot hold U+0000 (SQLite can), so it is refused on every backend. Text
    that is only hashed (a password) may hold U+0000 like any other character.
    """
    if "\x00" in text and not hashed_only:
        return "must not contain the NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (no lone surrogates)"
    return None
