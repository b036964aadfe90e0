"""argon2id hashing and the password policy."""

from __future__ import annotations

import asyncio
import threading

import pytest
from argon2 import PasswordHasher

from backend.app.core.errors import WeakPassword
from backend.app.identity import passwords
from backend.app.identity.passwords import (
    check_password_policy,
    hash_password,
    verify_password,
)


class TestPasswords:
    async def test_hash_is_argon2id_with_owasp_parameters(self):
        password_hash = await hash_password("a long enough password")

        assert password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")

    async def test_verify_matches_only_the_right_password(self):
        password_hash = await hash_password("a long enough password")

        right = await verify_password(
            password_hash=password_hash, password="a long enough password"
        )
        wrong = await verify_password(password_hash=password_hash, password="another password")

        assert right.matches
        assert right.new_hash is None
        assert not wrong.matches

    async def test_verify_rehashes_when_parameters_changed(self):
        """A hash made with weaker parameters is upgraded at the next sign-in."""
        old_hash = PasswordHasher(time_cost=1, memory_cost=8 * 1024).hash("a long enough password")

        check = await verify_password(password_hash=old_hash, password="a long enough password")

        assert check.matches
        assert check.new_hash is not None
        assert check.new_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")

    @pytest.mark.parametrize("password", ["1234567", "x" * 1025])
    def test_policy_refuses_too_short_or_too_long(self, password):
        with pytest.raises(WeakPassword):
            check_password_policy(password)

    def test_policy_counts_the_characters_as_sent_too(self):
        """Seven characters whose NFKC form has nine (VULGAR FRACTION ONE QUARTER becomes three):
        too short, as the published schema's `minLength` says (found by the fuzz suite)."""
        with pytest.raises(WeakPassword) as refused:
            check_password_policy("<WJI\u00bc\u00ea\u00b8")

        assert refused.value.details["reasons"] == ["too_short"]

    @pytest.mark.parametrize("password", ["80517362", "x" * 1024, "correct horse battery"])
    def test_policy_accepts_any_composition_between_8_and_1024(self, password):
        check_password_policy(password)


class TestHashingLimiter:
    def test_each_event_loop_has_a_limiter_of_its_own(self):
        """A test's live server runs its own loop in a thread: a limiter shared with another
        loop would wake a waiter from the wrong thread, and its request would stall."""

        async def limiters() -> tuple[object, object]:
            return passwords._hashing(), passwords._hashing()

        found: list[tuple[object, object]] = []
        thread = threading.Thread(target=lambda: found.append(asyncio.run(limiters())))
        thread.start()
        thread.join()
        here = asyncio.run(limiters())

        assert here[0] is here[1]
        assert found[0][0] is found[0][1]
        assert here[0] is not found[0][0]
