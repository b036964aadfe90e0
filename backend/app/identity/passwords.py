"""Password policy and argon2id hashing.

argon2id with OWASP's minimum parameters (19 MiB, t=2, p=1). Hashing and verifying take tens of
milliseconds and release the GIL, so both run in a worker thread, never on the event loop.
"""

from __future__ import annotations

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from backend.app.core.errors import WeakPassword

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "PasswordCheck",
    "check_password_policy",
    "hash_password",
    "verify_password",
    "verify_unknown_user",
]

MIN_PASSWORD_LENGTH = 8
# Long passphrases are welcome, but argon2 hashes whatever it is given: cap the work per request.
MAX_PASSWORD_LENGTH = 1024

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verified when the email is unknown, so both failure paths cost one argon2 verify (no user
# enumeration through timing).
_DUMMY_HASH = _hasher.hash("dummy password for unknown users")


def check_password_policy(password: str) -> None:
    """Length only, no composition rules and no truncation (NIST SP 800-63B).

    Raises:
        WeakPassword: with the reason in `details`; the password itself is never included.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(
            f"The password must have at least {MIN_PASSWORD_LENGTH} characters",
            details={"reasons": ["too_short"], "minLength": MIN_PASSWORD_LENGTH},
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(
            f"The password must have at most {MAX_PASSWORD_LENGTH} characters",
            details={"reasons": ["too_long"], "maxLength": MAX_PASSWORD_LENGTH},
        )


class PasswordCheck:
    """The outcome of a verify: whether it matched, and a new hash when parameters changed."""

    __slots__ = ("matches", "new_hash")

    def __init__(self, *, matches: bool, new_hash: str | None = None):
        self.matches = matches
        self.new_hash = new_hash


async def hash_password(password: str) -> str:
    return await anyio.to_thread.run_sync(_hasher.hash, password)


def _verify_sync(password_hash: str, password: str) -> PasswordCheck:
    try:
        _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return PasswordCheck(matches=False)
    if _hasher.check_needs_rehash(password_hash):
        return PasswordCheck(matches=True, new_hash=_hasher.hash(password))
    return PasswordCheck(matches=True)


async def verify_password(*, password_hash: str, password: str) -> PasswordCheck:
    return await anyio.to_thread.run_sync(_verify_sync, password_hash, password)


async def verify_unknown_user(*, password: str) -> None:
    """Spend the same time as a real verify, for an email that has no account."""
    await anyio.to_thread.run_sync(_verify_sync, _DUMMY_HASH, password)
