"""Password policy and argon2id hashing.

argon2id with OWASP's minimum parameters (19 MiB, t=2, p=1). Hashing and verifying take tens of
milliseconds and release the GIL, so both run in a worker thread, never on the event loop, and
no more of them at once than there are cores: each holds 19 MiB while it runs, and more hashes
than cores only take turns on them. Under 32 concurrent sign-ins on 2 cores (wrk -c32) the
sign-ins per second were the same with 2 hashing threads as with 40 (62/s, 65/s), and the
server's peak memory 176 MiB against 823 MB.

Every password is put in Unicode NFKC form before it is checked, hashed or verified (ASVS 5.0 V6.2,
NIST SP 800-63B 5.1.1.2): the same passphrase typed on two keyboards (a composed or decomposed
"é", a full-width digit) is one password. The normalisation lives here, under `hash_password`
and `verify_password`, so sign-up, sign-in and a password change cannot apply it differently.
"""

from __future__ import annotations

import functools
import os
import secrets
import unicodedata
from importlib import resources

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from backend.app.core.errors import WeakPassword

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "PasswordCheck",
    "check_password_policy",
    "hash_password",
    "is_common_password",
    "normalize_password",
    "unusable_password_hash",
    "verify_password",
    "verify_unknown_user",
]

MIN_PASSWORD_LENGTH = 8
# Long passphrases are welcome, but argon2 hashes whatever it is given: cap the work per request.
MAX_PASSWORD_LENGTH = 1024

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# At most one argon2 hash per core at a time, per event loop: anyio's primitives belong to the
# loop that made them, so a limiter shared by two loops (a test's live server runs its own in a
# thread) loses the wake-up of a waiter on the other one, which then stalls until some unrelated
# event wakes its loop. A process serves from one loop, so this is one limiter in production.
_hashing_limiter: RunVar[anyio.CapacityLimiter] = RunVar("password_hashing_limiter")
# Verified when the email is unknown, so both failure paths cost one argon2 verify (no user
# enumeration through timing).
_DUMMY_HASH = _hasher.hash("dummy password for unknown users")


def _hashing() -> anyio.CapacityLimiter:
    try:
        return _hashing_limiter.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(os.cpu_count() or 1)
        _hashing_limiter.set(limiter)
        return limiter


def normalize_password(password: str) -> str:
    """The password in Unicode NFKC form: what is checked, hashed and verified."""
    return unicodedata.normalize("NFKC", password)


@functools.cache
def _common_passwords() -> frozenset[str]:
    # Django's list of the 20,000 most common passwords, those of 8 characters or more
    # (identity/data/README.md says where from and under which licence).
    text = (
        resources.files("backend.app.identity")
        .joinpath("data/common-passwords.txt")
        .read_text("utf-8")
    )
    return frozenset(line for line in text.splitlines() if line)


def is_common_password(password: str) -> bool:
    """Whether the password, in NFKC form, case-folded and stripped, is a well-known one."""
    return normalize_password(password).strip().casefold() in _common_passwords()


def check_password_policy(password: str, *, min_length: int = MIN_PASSWORD_LENGTH) -> None:
    """Length (of the NFKC form) and the common-password list; no composition rules and no
    truncation (NIST SP 800-63B). `min_length`: `PASSWORD_MIN_LENGTH` (8 unless lowered outside
    production, as GoTrue's default of 6).

    Raises:
        WeakPassword: with the reason in `details`; the password itself is never included.
    """
    typed, password = password, normalize_password(password)
    # Both forms: NFKC can lengthen a password (U+00BC, a fraction, becomes three characters),
    # and the published schema's `minLength` counts the characters as sent.
    if min(len(typed), len(password)) < min_length:
        raise WeakPassword(
            f"The password must have at least {min_length} characters",
            details={"reasons": ["too_short"], "minLength": min_length},
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(
            f"The password must have at most {MAX_PASSWORD_LENGTH} characters",
            details={"reasons": ["too_long"], "maxLength": MAX_PASSWORD_LENGTH},
        )
    if is_common_password(password):
        raise WeakPassword(
            "This password is one of the most common ones: choose another",
            details={"reasons": ["common"]},
        )


class PasswordCheck:
    """The outcome of a verify: whether it matched, and a new hash when parameters changed."""

    __slots__ = ("matches", "new_hash")

    def __init__(self, *, matches: bool, new_hash: str | None = None):
        self.matches = matches
        self.new_hash = new_hash


async def hash_password(password: str) -> str:
    return await anyio.to_thread.run_sync(
        _hasher.hash, normalize_password(password), limiter=_hashing()
    )


def _matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _verify_sync(password_hash: str, password: str) -> PasswordCheck:
    normalized = normalize_password(password)
    if _matches(password_hash, normalized):
        if _hasher.check_needs_rehash(password_hash):
            return PasswordCheck(matches=True, new_hash=_hasher.hash(normalized))
        return PasswordCheck(matches=True)
    # A hash made before passwords were normalised holds the password as typed: it still
    # verifies once, and is replaced by the hash of the normal form. This second verify happens
    # for unknown emails too (same hash count on both failure paths).
    if normalized != password and _matches(password_hash, password):
        return PasswordCheck(matches=True, new_hash=_hasher.hash(normalized))
    return PasswordCheck(matches=False)


async def verify_password(*, password_hash: str, password: str) -> PasswordCheck:
    return await anyio.to_thread.run_sync(_verify_sync, password_hash, password, limiter=_hashing())


_unusable_hash: str | None = None


async def unusable_password_hash() -> str:
    """A hash no password verifies against (of a random one, forgotten at once), for a user who
    has no password yet: GoTrue's passwordless sign-up (`/otp`), an invitation, an admin's user
    created without one. Made once per process, so creating such a user costs no argon2 hash:
    `/otp` for a new address takes no longer than for a known one (a hash is tens of
    milliseconds, enough to tell them apart)."""
    global _unusable_hash
    if _unusable_hash is None:
        _unusable_hash = await hash_password(secrets.token_urlsafe(48))
    return _unusable_hash


async def verify_unknown_user(*, password: str) -> None:
    """Spend the same time as a real verify, for an email that has no account."""
    await anyio.to_thread.run_sync(_verify_sync, _DUMMY_HASH, password, limiter=_hashing())
