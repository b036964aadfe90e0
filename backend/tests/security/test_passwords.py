"""Password policy (ASVS 5.0 V6.2; NIST SP 800-63B 5.1.1.2), through sign-up and sign-in."""

from __future__ import annotations

import threading
import tomllib
import unicodedata
from fnmatch import fnmatch
from pathlib import Path

import httpx
import pytest

from backend.app.core.errors import WeakPassword
from backend.app.identity import passwords
from backend.app.identity.passwords import check_password_policy, verify_password
from backend.tests.helpers import AuthApi, unique_email

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def database_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'app.db'}"


def assert_weak(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "weak_password"
    assert response.json()["details"]["reasons"] == [reason]


class TestLength:
    """V6.2.1 (at least 8), V6.2.9 (64 and more allowed, up to 1024: the work per request)."""

    @pytest.mark.parametrize(
        ("password", "reason"), [("Zq7#vX2", "too_short"), ("Zq7#vX2!" * 128 + "x", "too_long")]
    )
    async def test_out_of_bounds_is_weak_password(self, api: AuthApi, password, reason):
        assert_weak(await api.signup(unique_email(), password=password), reason)

    @pytest.mark.parametrize("password", ["Zq7#vX2!", "Zq7#vX2!" * 8, "Zq7#vX2!" * 128])
    async def test_8_64_and_1024_characters_are_accepted(self, api: AuthApi, password):
        email = unique_email()

        signup = await api.signup(email, password=password)
        signin = await api.signin(email, password=password)

        assert signup.status_code == 201, signup.text
        assert signin.status_code == 200, signin.text

    async def test_composition_is_free(self, api: AuthApi):
        """V6.2.5: no character-class rules: lower-case letters and spaces only is fine."""
        response = await api.signup(unique_email(), password="purple otters juggle quietly")

        assert response.status_code == 201


class TestNoTruncation:
    """V6.2.8: the password is verified exactly as received: every character counts."""

    async def test_the_73rd_character_counts(self, api: AuthApi):
        """bcrypt would stop at 72 bytes; argon2 does not."""
        email = unique_email()
        password = "k" * 72 + "A"
        await api.signup(email, password=password)

        other_73rd = await api.signin(email, password="k" * 72 + "B")
        first_72 = await api.signin(email, password="k" * 72)

        assert other_73rd.status_code == 401
        assert first_72.status_code == 401
        assert (await api.signin(email, password=password)).status_code == 200

    async def test_nul_and_what_follows_count(self, api: AuthApi):
        email = unique_email()
        await api.signup(email, password="before\x00after-one")

        cut_at_nul = await api.signin(email, password="before")
        other_tail = await api.signin(email, password="before\x00after-two")

        assert cut_at_nul.status_code == 401
        assert other_tail.status_code == 401
        assert (await api.signin(email, password="before\x00after-one")).status_code == 200

    async def test_case_counts(self, api: AuthApi):
        email = unique_email()
        await api.signup(email, password="Purple Otters Juggle")

        assert (await api.signin(email, password="purple otters juggle")).status_code == 401


class TestUnicode:
    """NFKC at sign-up and at sign-in alike: one passphrase, whatever the keyboard typed."""

    @pytest.mark.parametrize(
        ("at_signup", "at_signin"),
        [
            ("cafe\u0301 au lait!", "caf\u00e9 au lait!"),  # decomposed / composed
            ("caf\u00e9 au lait!", "cafe\u0301 au lait!"),
            ("\uff30\uff41\uff53\uff53 \uff17\uff18\uff19\uff10", "Pass 7890"),  # full width
            ("\ufb01rst of \u2163 kings", "first of IV kings"),  # ligature, Roman numeral
        ],
        ids=["decomposed-first", "composed-first", "full-width", "compatibility"],
    )
    async def test_equivalent_spellings_are_one_password(self, api: AuthApi, at_signup, at_signin):
        email = unique_email()
        assert (await api.signup(email, password=at_signup)).status_code == 201

        response = await api.signin(email, password=at_signin)

        assert response.status_code == 200, response.text

    async def test_different_letters_stay_different(self, api: AuthApi):
        email = unique_email()
        await api.signup(email, password="caf\u00e9 au lait!")

        assert (await api.signin(email, password="cafe au lait!")).status_code == 401

    async def test_a_hash_made_before_normalisation_still_verifies_and_is_upgraded(self):
        typed = "cafe\u0301 au lait!"
        legacy_hash = passwords._hasher.hash(typed)  # as stored before NFKC

        check = await verify_password(password_hash=legacy_hash, password=typed)

        assert check.matches
        assert check.new_hash is not None
        normal = unicodedata.normalize("NFKC", typed)
        assert passwords._hasher.verify(check.new_hash, normal)


class TestCommonPasswords:
    """V6.2.4: the most common passwords that fit the length policy are refused."""

    @pytest.mark.parametrize(
        "password",
        [
            "password",
            "Password",
            "PASSWORD1",
            "iloveyou",
            "qwertyuiop",
            "\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44",  # full-width "password"
            " sunshine ",
        ],
    )
    async def test_common_password_is_weak_password(self, api: AuthApi, password):
        response = await api.signup(unique_email(), password=password)

        assert_weak(response, "common")
        assert response.json()["details"] == {"reasons": ["common"]}

    def test_the_list_holds_thousands_of_entries_of_the_policys_length(self):
        entries = passwords._common_passwords()

        assert len(entries) >= 3000
        assert all(len(entry) >= passwords.MIN_PASSWORD_LENGTH for entry in entries)

    @pytest.mark.parametrize("index", [0, 1000, 4000, -1])
    def test_entries_from_anywhere_in_the_list_are_refused(self, index):
        text = (ROOT / "backend/app/identity/data/common-passwords.txt").read_text("utf-8")
        entry = text.splitlines()[index]

        with pytest.raises(WeakPassword):
            check_password_policy(entry)

    def test_the_list_and_its_licence_ship_as_package_data(self):
        config = tomllib.loads((ROOT / "pyproject.toml").read_text())
        patterns = config["tool"]["setuptools"]["package-data"]["backend.app.identity"]

        for name in ("data/common-passwords.txt", "data/LICENSE-django.txt", "data/README.md"):
            assert (ROOT / "backend/app/identity" / name).is_file()
            assert any(fnmatch(name, pattern) for pattern in patterns), name


class TestHashingOffTheLoop:
    async def test_hash_and_verify_run_in_a_worker_thread(self, monkeypatch):
        """argon2 takes tens of milliseconds: on the event loop it would stall every request."""
        threads: list[int] = []
        hasher = passwords._hasher

        class Spy:
            def __getattr__(self, name):
                return getattr(hasher, name)

            def hash(self, password):
                threads.append(threading.get_ident())
                return hasher.hash(password)

            def verify(self, password_hash, password):
                threads.append(threading.get_ident())
                return hasher.verify(password_hash, password)

        monkeypatch.setattr(passwords, "_hasher", Spy())

        stored = await passwords.hash_password("purple otters juggle")
        await passwords.verify_password(password_hash=stored, password="purple otters juggle")

        assert len(threads) == 2
        assert threading.get_ident() not in threads
