"""Fuzzing the GoTrue-compatible API: schemathesis over every `/auth/v1` operation, on SQLite and
PostgreSQL, in process over ASGI.

Each case carries the credentials its route wants (the anon key always; a fresh user's access
token on `/user`, `/logout` and `/reauthenticate`; the service-role key under `/admin` and on
`/invite`), so that generated bodies
reach the handlers. The one check is the one this API promises for any input: no 5xx. (GoTrue's
errors are not this app's error body, and its lenient bodies accept what the schema would
refuse, so the contract checks of `backend/tests/test_fuzz.py` do not apply here.) Each database
prints "N cases, 0 5xx" with the statuses per operation.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import settings
from schemathesis.checks import not_a_server_error

from backend.app.core.settings import Settings
from backend.app.main import create_app
from backend.tests.gotrue_server import ANON_KEY, SERVICE_ROLE_KEY
from backend.tests.helpers import PASSWORD, unique_email
from backend.tests.test_fuzz import HYPOTHESIS_SETTINGS, RunningApp

MAX_EXAMPLES_PER_OPERATION = 40

_CREATING_USERS = frozenset({"/auth/v1/signup", "/auth/v1/admin/users", "/auth/v1/invite"})
# The lifecycle's routes take an address and a `type`: a generated one is almost never valid, so
# the address is made real and the type one of the route's own (picked by the generated
# string's length), so that the rest of the generated body reaches the handler.
_MAILING = frozenset(
    {"/auth/v1/recover", "/auth/v1/otp", "/auth/v1/resend", "/auth/v1/verify"}
    | {"/auth/v1/admin/generate_link"}
)
_TYPES = {
    "/auth/v1/resend": ("signup", "email_change"),
    "/auth/v1/verify": ("signup", "recovery", "magiclink", "invite", "email", "email_change"),
    "/auth/v1/admin/generate_link": (
        *("signup", "invite", "magiclink", "recovery", "email_change_current"),
        "email_change_new",
    ),
}
# The routes of a signed-in user (a fresh one's token each time) and of the admin.
_USER_PATHS = frozenset({"/auth/v1/user", "/auth/v1/logout", "/auth/v1/reauthenticate"})
_ADMIN_PATHS = frozenset({"/auth/v1/invite"})
_KEYS: dict[str, Any] = {
    "supabase_anon_key": ANON_KEY,
    "supabase_service_role_key": SERVICE_ROLE_KEY,
}
RUNNING_APP = RunningApp()
SCHEMA = schemathesis.openapi.from_dict(
    create_app(Settings(_env_file=None, gotrue_api_enabled=True, **_KEYS)).openapi()
).include(path_regex="^/auth/v1/")
SCHEMA.app = RUNNING_APP


class GoTrueFuzz:
    def __init__(self) -> None:
        self.statuses: defaultdict[str, Counter[int]] = defaultdict(Counter)
        self._known_email: str | None = None

    @property
    def known_email(self) -> str:
        """The address of one user, made on first use: half the lifecycle's cases name it."""
        if self._known_email is None:
            self._known_email = unique_email()
            signup = SCHEMA["/auth/v1/signup"]["POST"].Case(
                body={"email": self._known_email, "password": PASSWORD},
                headers={"apikey": ANON_KEY},
            )
            assert signup.call().status_code == 200
        return self._known_email

    def user_token(self) -> str:
        """A new user's access token: `/logout` ends the session it is sent with."""
        signup = SCHEMA["/auth/v1/signup"]["POST"].Case(
            body={"email": unique_email(), "password": PASSWORD}, headers={"apikey": ANON_KEY}
        )
        response = signup.call()
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def call_and_validate(self, case: schemathesis.Case[Any]) -> None:
        path = case.operation.path
        bearer = ANON_KEY
        if path.startswith("/auth/v1/admin") or path in _ADMIN_PATHS:
            bearer = SERVICE_ROLE_KEY
        elif path in _USER_PATHS:
            bearer = self.user_token()
        if path in _CREATING_USERS and isinstance(case.body, dict) and "email" in case.body:
            # A generated address is almost never a valid one: put a real one in its place so
            # that the generated password and metadata reach the store.
            case.body = {**case.body, "email": unique_email()}
        if path in _MAILING and case.method == "POST" and isinstance(case.body, dict):
            body = dict(case.body)
            if "email" in body:
                body["email"] = self.known_email if len(str(body["email"])) % 2 else unique_email()
            kind = body.get("type")
            if isinstance(kind, str) and path in _TYPES:
                body["type"] = _TYPES[path][len(kind) % len(_TYPES[path])]
            case.body = body
        case.headers.update({"apikey": ANON_KEY, "Authorization": f"Bearer {bearer}"})
        response = case.call()
        self.statuses[f"{case.method} {path}"][response.status_code] += 1
        case.validate_response(response, checks=[not_a_server_error])

    def report(self, label: str, seconds: float) -> str:
        total = sum(sum(c.values()) for c in self.statuses.values())
        errors = sum(n for c in self.statuses.values() for s, n in c.items() if s >= 500)
        lines = [f"{label}: {total} cases, {errors} 5xx, {seconds:.0f} s"]
        for operation, counts in sorted(self.statuses.items()):
            lines.append(f"    {operation}: {dict(sorted(counts.items()))}")
        return "\n".join(lines)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def gotrue_fuzz(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GoTrueFuzz]:
    data_dir: Path = tmp_path_factory.mktemp("gotrue-fuzz")
    if request.param == "postgres":
        database_url: str = request.getfixturevalue("postgres_url")
    else:
        database_url = f"sqlite:///{data_dir / 'app.db'}"
    RUNNING_APP.app = create_app(
        Settings(
            _env_file=None,
            data_dir=data_dir,
            database_url=database_url,
            redis_url=None,
            gotrue_api_enabled=True,
            rate_limit_signup_per_address="100000/minute",
            rate_limit_signin_per_account="100000/minute",
            rate_limit_signin_per_address="100000/minute",
            rate_limit_refresh_per_address="100000/minute",
            # The lifecycle's mail limits too, or its routes soon answer only 429.
            rate_limit_email_per_recipient="100000/hour",
            rate_limit_email_per_address="100000/hour",
            **_KEYS,
        )
    )
    started = time.perf_counter()
    fuzz = GoTrueFuzz()
    try:
        yield fuzz
    finally:
        from schemathesis.python import asgi

        asgi.shutdown_lifespans()
        RUNNING_APP.app = None
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else _nothing():
        print("\n" + fuzz.report(f"gotrue fuzz [{request.param}]", time.perf_counter() - started))


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


@SCHEMA.parametrize()
@settings(HYPOTHESIS_SETTINGS, max_examples=MAX_EXAMPLES_PER_OPERATION)
# A mail that goes out draws its Message-ID from the `random` module (`email.utils.make_msgid`),
# which Hypothesis reports as a deprecation: the app's own use, not the strategies'.
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
def test_gotrue_operation_given_generated_requests_never_answers_5xx(case, gotrue_fuzz):
    gotrue_fuzz.call_and_validate(case)
