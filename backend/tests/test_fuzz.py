"""Fuzzing: schemathesis against the app's own OpenAPI schema, in process over ASGI.

Every generated request carries a signed-in user's credentials (bearer token, CSRF token, CSRF
and refresh cookies), except where schemathesis drops or corrupts them on purpose to test the
refusals. Every response must pass all of schemathesis's default checks (among them: no 5xx; a
documented status code, content type and body schema; schema-valid input accepted, invalid input
rejected; credentials not ignored; `Allow` on 405) and, on any 4xx/5xx, be exactly the error
body `{code: str, message: str, details: object}`. A failure prints a curl command that
reproduces it.

Two runs on each database: per operation (the examples, coverage and fuzzing phases), then
stateful sequences along the links schemathesis infers between the /items operations (FastAPI
emits no OpenAPI links; schemathesis 4 infers POST /items -> GET/PATCH/DELETE /items/{item_id}
from the response schemas). Only the stateful run reaches an existing item by id.

Reproducible: Hypothesis is derandomized and keeps no example database. Each database prints a
summary line, "N cases, 0 5xx", with the statuses per operation. SQLite only:
`pytest backend/tests/test_fuzz.py -m "not postgres"`.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, TypeAlias

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import positive_data_acceptance
from starlette.types import Message, Receive, Scope, Send

from backend.app.core.security import CSRF_COOKIE, CSRF_HEADER, REFRESH_COOKIE
from backend.app.core.settings import Settings
from backend.app.main import create_app
from backend.tests.helpers import PASSWORD, unique_email

# Every /auth and /items operation; the examples and coverage phases add their own cases.
MAX_EXAMPLES_PER_OPERATION = 100
STATEFUL_SCENARIOS = 60
STATEFUL_STEPS = 10

Case: TypeAlias = schemathesis.Case[Any]

HYPOTHESIS_SETTINGS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    # Every case is a real request on a real database, so slower than Hypothesis expects.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class RunningApp:
    """The ASGI app `SCHEMA` sends requests to: a stand-in for the app that the `fuzz` fixture
    builds on each database.

    Schemathesis makes one test per operation at collection, so the schema exists before any app
    or database does. (Its lazy loader, `schemathesis.pytest.from_fixture`, would load it from a
    fixture instead, but schemathesis 4.32 reads `Node._nodeid`, which pytest 9.2 has renamed.)
    """

    def __init__(self) -> None:
        self.app: FastAPI | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "no fuzz run in progress"
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answered = False

        async def sending(message: Message) -> None:
            nonlocal answered
            answered = answered or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            # After answering 500, Starlette re-raises the error for the server to log (the app
            # has logged it with its traceback). A server keeps serving, and the client gets the
            # 500: so do the checks, which report it with the request that caused it.
            if not answered:
                raise


RUNNING_APP = RunningApp()
# Building an app opens no database and reads no key file: its lifespan does.
SCHEMA = schemathesis.openapi.from_dict(create_app(Settings(_env_file=None)).openapi())
SCHEMA.app = RUNNING_APP

# The operations that consume the refresh session they are sent with: refresh rotates it,
# logout revokes it.
SESSION_CONSUMING = frozenset({"POST /auth/refresh", "POST /auth/logout"})
# Random ids find no item: these succeed only when the stateful run follows a link to a real one.
BY_ID = frozenset({"GET /items/{item_id}", "PATCH /items/{item_id}", "DELETE /items/{item_id}"})
# Never a 2xx for generated data, by design; their success paths are tested in
# backend/tests/lifecycle/: a random session id is nobody's session, a generated token was never
# mailed, a generated current password is not the user's.
NEVER_2XX_WHEN_GENERATED = BY_ID | {
    "DELETE /auth/sessions/{session_id}",
    "POST /auth/password/reset",
    "POST /auth/password",
    "POST /auth/email",
    "POST /auth/email/verify",
}
# What a 2xx of these may end besides the session it was sent with (logout `scope=global`, a
# password change, ending a session by id): the primary session too, so the user is replaced.
PRIMARY_ENDING = frozenset(
    {"POST /auth/logout", "POST /auth/password", "DELETE /auth/sessions/{session_id}"}
)
ERROR_BODY_KEYS = {"code", "message", "details"}

# What the auth provider puts on a case when schemathesis generates it, which for the coverage
# phase is at collection, before any user exists; `Sessions.fill` puts live credentials in their
# place right before the call.
PENDING_ACCESS_TOKEN = "pending-access-token"
PENDING_CSRF_TOKEN = "pending-csrf-token"
PENDING_CSRF_COOKIE = "pending-csrf-cookie"
PENDING_REFRESH_COOKIE = "pending-refresh-cookie"


@SCHEMA.auth(refresh_interval=None)
class SignedInUser:
    """Marks every case as carrying the signed-in user's credentials. Schemathesis skips it on
    the cases that test missing or corrupt credentials."""

    def get(self, case: Case, ctx: schemathesis.AuthContext) -> bool:
        return True

    def set(self, case: Case, data: bool, ctx: schemathesis.AuthContext) -> None:
        case.headers["Authorization"] = f"Bearer {PENDING_ACCESS_TOKEN}"
        case.headers[CSRF_HEADER] = PENDING_CSRF_TOKEN
        case.cookies[CSRF_COOKIE] = PENDING_CSRF_COOKIE
        case.cookies[REFRESH_COOKIE] = PENDING_REFRESH_COOKIE


def _issued_cookies(response: schemathesis.Response) -> dict[str, str]:
    """The cookies a response sets; a cleared one is an empty string."""
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.get("set-cookie", []):
        jar.load(header)
    return {name: morsel.value for name, morsel in jar.items()}


@dataclass(frozen=True)
class Credentials:
    access_token: str
    csrf_token: str
    csrf_cookie: str
    refresh_cookie: str


class Sessions:
    """One user, signed up and in through the app's own ASGI interface, and the credentials that
    generated cases carry.

    Every case gets the primary session's bearer token and CSRF pair; a generated call that may
    have ended the primary session (`PRIMARY_ENDING`) is followed by a new user. Refresh and
    logout get a live disposable session instead of the primary one: a successful refresh hands
    over the rotated cookie, and when a call clears the cookie (logout, a refused refresh) the
    next such case signs in afresh. So every refresh and logout case exercises a real session.
    """

    def __init__(self) -> None:
        self._live: Credentials | None = None
        self._handed_out: set[str] = set()
        # Every CSRF value handed out, so that a replayed case gets the current ones.
        self._csrf_tokens: set[str] = set()
        self._csrf_cookies: set[str] = set()
        self.sign_ins = 0
        self.new_user()

    def new_user(self) -> None:
        """Sign up and sign in another user, whose session becomes the primary one."""
        self._email = unique_email()
        signup = self._post("/auth/signup", {"email": self._email, "password": PASSWORD})
        assert signup.status_code == 201, signup.text
        self.primary = self._sign_in()
        self._live = None

    def _post(self, path: str, body: dict[str, Any]) -> schemathesis.Response:
        csrf = SCHEMA["/auth/csrf"]["GET"].Case().call()
        assert csrf.status_code == 200, csrf.text
        case = SCHEMA[path]["POST"].Case(
            body=body,
            headers={CSRF_HEADER: csrf.json()["csrfToken"]},
            cookies={CSRF_COOKIE: _issued_cookies(csrf)[CSRF_COOKIE]},
        )
        return case.call()

    def _sign_in(self) -> Credentials:
        response = self._post("/auth/signin", {"email": self._email, "password": PASSWORD})
        assert response.status_code == 200, response.text
        self.sign_ins += 1
        body, cookies = response.json(), _issued_cookies(response)
        return Credentials(
            access_token=body["accessToken"],
            csrf_token=body["csrfToken"],
            csrf_cookie=cookies[CSRF_COOKIE],
            refresh_cookie=cookies[REFRESH_COOKIE],
        )

    def _live_session(self) -> Credentials:
        if self._live is None:
            self._live = self._sign_in()
        self._handed_out.add(self._live.refresh_cookie)
        return self._live

    def fill(self, case: Case) -> None:
        """Right before a call: live credentials where the auth provider left placeholders.

        A refresh or logout case replayed by Hypothesis carries a session an earlier case may
        have consumed since; it gets the live one too.
        """
        headers, cookies = case.headers, case.cookies
        if headers.get("Authorization") == f"Bearer {PENDING_ACCESS_TOKEN}":
            headers["Authorization"] = f"Bearer {self.primary.access_token}"
        refresh = cookies.get(REFRESH_COOKIE)
        consumed = refresh == PENDING_REFRESH_COOKIE or refresh in self._handed_out
        # The CSRF cookie is bound to the refresh cookie it travels with: both come from one
        # session, the live one for refresh and logout, the primary one elsewhere.
        source = (
            self._live_session()
            if case.operation.label in SESSION_CONSUMING and consumed
            else self.primary
        )
        if headers.get(CSRF_HEADER) in (PENDING_CSRF_TOKEN, *self._csrf_tokens):
            headers[CSRF_HEADER] = source.csrf_token
        if cookies.get(CSRF_COOKIE) in (PENDING_CSRF_COOKIE, *self._csrf_cookies):
            cookies[CSRF_COOKIE] = source.csrf_cookie
        if source is not self.primary or refresh == PENDING_REFRESH_COOKIE:
            cookies[REFRESH_COOKIE] = source.refresh_cookie
        self._csrf_tokens.add(source.csrf_token)
        self._csrf_cookies.add(source.csrf_cookie)

    def observe(self, case: Case, response: schemathesis.Response) -> None:
        """After a call: follow what it did to the live disposable session, and to the
        primary one."""
        if case.operation.label in PRIMARY_ENDING and 200 <= response.status_code < 300:
            self.new_user()
            return
        if self._live is None or case.operation.label not in SESSION_CONSUMING:
            return
        if case.cookies.get(REFRESH_COOKIE) != self._live.refresh_cookie:
            return
        issued = _issued_cookies(response).get(REFRESH_COOKIE)
        if issued is None:  # refused before the cookie was read (CSRF): the session lives on
            return
        # A refresh re-signs the CSRF cookie for the new refresh cookie (the token stays).
        csrf_cookie = _issued_cookies(response).get(CSRF_COOKIE) or self._live.csrf_cookie
        self._live = (
            replace(self._live, refresh_cookie=issued, csrf_cookie=csrf_cookie) if issued else None
        )


@dataclass
class Tally:
    """The statuses that came back, per operation."""

    statuses: defaultdict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))

    def record(self, case: Case, response: schemathesis.Response) -> None:
        self.statuses[case.operation.label][response.status_code] += 1

    @property
    def cases(self) -> int:
        return sum(sum(counter.values()) for counter in self.statuses.values())

    @property
    def server_errors(self) -> int:
        return sum(
            count
            for counter in self.statuses.values()
            for status, count in counter.items()
            if status >= 500
        )

    def succeeded(self) -> set[str]:
        return {
            label
            for label, counter in self.statuses.items()
            if any(200 <= status < 300 for status in counter)
        }

    def merged(self, other: Tally) -> Tally:
        merged = Tally()
        for tally in (self, other):
            for label, counter in tally.statuses.items():
                merged.statuses[label].update(counter)
        return merged

    def report(self, title: str, seconds: float) -> str:
        lines = [f"{title}: {self.cases} cases, {self.server_errors} 5xx, {seconds:.0f} s"]
        for label in sorted(self.statuses):
            counts = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses[label].items()))
            lines.append(f"    {label:<32} {counts}")
        return "\n".join(lines)


def error_body_is_the_contract(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> bool | None:
    """Every 4xx/5xx body is exactly `{code: str, message: str, details: object}`."""
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"Error body is not JSON: {response.text[:200]!r}") from None
    assert isinstance(body, dict), f"Error body is not an object: {body!r}"
    assert set(body) == ERROR_BODY_KEYS, f"Error body keys are {sorted(body)}"
    assert isinstance(body["code"], str), f"Error `code` is not a string: {body!r}"
    assert isinstance(body["message"], str), f"Error `message` is not a string: {body!r}"
    assert isinstance(body["details"], dict), f"Error `details` is not an object: {body!r}"
    return None


@dataclass
class Fuzz:
    sessions: Sessions
    tally: Tally = field(default_factory=Tally)
    stateful_tally: Tally = field(default_factory=Tally)

    def call_and_validate(self, case: Case, tally: Tally) -> None:
        """Send one generated case with live credentials, count it, then run every check."""
        self.sessions.fill(case)
        response = case.call()
        tally.record(case, response)
        self.sessions.observe(case, response)
        case.validate_response(
            response,
            additional_checks=[error_body_is_the_contract],
            excluded_checks=[positive_data_acceptance]
            if _common_password(case, response) or _unmailed_token(case, response)
            else [],
        )


def _common_password(case: Case, response: schemathesis.Response) -> bool:
    """Sign-up refuses the most common passwords (422 `weak_password`, reason `common`): a rule
    no JSON Schema can state, so the one refusal a schema-valid sign-up may get."""
    if case.operation.path != "/auth/signup" or response.status_code != 422:
        return False
    body: dict[str, Any] = response.json()
    return body.get("code") == "weak_password" and body["details"].get("reasons") == ["common"]


# The routes that take a token from a mailed link: a generated one was never mailed.
TOKEN_ROUTES = frozenset({"/auth/password/reset", "/auth/email/verify"})


def _unmailed_token(case: Case, response: schemathesis.Response) -> bool:
    """A schema-valid token that no mail carried is 400 `token_invalid`: the only answer a
    generated token can get, and no JSON Schema can tell a mailed token from another."""
    if case.operation.path not in TOKEN_ROUTES or response.status_code != 400:
        return False
    body: dict[str, Any] = response.json()
    return body.get("code") == "token_invalid"


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def fuzz(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fuzz]:
    """The app on a database of its own (per module and backend) with a signed-in user.

    Schemathesis runs the app's lifespan itself, in its event loop thread. At the end: the
    summary, and (unless a test failed, which says more) a guard against fuzzing that only
    bounces off the credentials: every operation has answered some generated case with a 2xx.
    """
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
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
            rate_limit_signin_per_account="100000/minute",
            rate_limit_signin_per_address="100000/minute",
            rate_limit_refresh_per_address="100000/minute",
            access_token_ttl_seconds=3600,
        )
    )
    started, failed_before = time.perf_counter(), request.session.testsfailed
    try:
        result = Fuzz(sessions=Sessions())
        yield result
    finally:
        asgi.shutdown_lifespans()
        RUNNING_APP.app = None
    total = result.tally.merged(result.stateful_tally)
    report = total.report(f"fuzz [{request.param}]", time.perf_counter() - started)
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(f"\n{report}\n    sign-ins: {result.sessions.sign_ins}")
    if request.session.testsfailed == failed_before:
        tried = set(result.tally.statuses) - NEVER_2XX_WHEN_GENERATED
        never = tried - result.tally.succeeded()
        assert not never, f"never answered 2xx to a generated case: {sorted(never)}"


@SCHEMA.parametrize()
@settings(HYPOTHESIS_SETTINGS, max_examples=MAX_EXAMPLES_PER_OPERATION)
def test_operation_given_generated_requests_answers_as_documented(case, fuzz):
    """Valid and invalid inputs, with and without credentials: no 5xx, the documented status,
    content type and body, and the error body on every failure."""
    fuzz.call_and_validate(case, fuzz.tally)


def test_item_workflows_given_linked_sequences_answer_as_documented(fuzz):
    """Create an item, then read, patch, delete and read it again, as the inferred links chain
    them: the same checks on every step, plus schemathesis's stateful ones (a created item can
    be read; a deleted one is gone). Every by-id operation reaches a real item."""
    base: type[schemathesis.stateful.APIStateMachine] = SCHEMA.as_state_machine()

    class ItemWorkflow(base):  # type: ignore[valid-type, misc]
        def setup(self) -> None:
            # Each scenario starts from a user with no items, so that Hypothesis, replaying a
            # scenario to shrink a failure, sees the same responses again.
            fuzz.sessions.new_user()

        def before_call(self, case: Case) -> None:
            fuzz.sessions.fill(case)

        def after_call(self, response: schemathesis.Response, case: Case) -> None:
            super().after_call(response, case)
            fuzz.stateful_tally.record(case, response)

        def validate_response(
            self,
            response: schemathesis.Response,
            case: Case,
            additional_checks: list[Any] | None = None,
            **kwargs: Any,
        ) -> None:
            checks = [*(additional_checks or []), error_body_is_the_contract]
            super().validate_response(response, case, additional_checks=checks, **kwargs)

    ItemWorkflow.run(
        settings=settings(
            HYPOTHESIS_SETTINGS,
            max_examples=STATEFUL_SCENARIOS,
            stateful_step_count=STATEFUL_STEPS,
        )
    )

    reached = fuzz.stateful_tally.succeeded()
    assert reached >= BY_ID, f"never reached an existing item: {sorted(BY_ID - reached)}"
