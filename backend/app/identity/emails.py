"""Email identity: which spellings of an address are the same account.

`ADA@example.com`, `ada@EXAMPLE.com` and `ada@example.com` in full-width letters (U+FF41…)
must be one account, or a look-alike registers a second one beside the real one. The key is the
address in Unicode NFKC (which folds compatibility forms such as full-width letters), then
case-folded. What the user typed is kept for display; only the key is unique and looked up.
"""

from __future__ import annotations

import unicodedata

__all__ = ["email_key"]


def email_key(email: str) -> str:
    """The normalized form of `email` that decides uniqueness and sign-in."""
    return unicodedata.normalize("NFKC", email.strip()).casefold()
