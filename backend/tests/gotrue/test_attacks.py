"""Hostile input to the GoTrue-compatible API (`/auth/v1`), on SQLite and PostgreSQL.

Whatever a caller writes is data: a body is parsed once, by one bounded parser, so nothing it
stores can later fail to serialize; query parameters are ASCII digits within bounds; the
refusals of the request limits are GoTrue's own; app metadata is the admin's to write.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from backend.app.api.gotrue.schemas import MAX_JSON_DEPTH
from backend.tests.gotrue.conftest import GoTrue
from backend.tests.helpers import PASSWORD, unique_email


class _AnyText(str):
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)

    __hash__ = str.__hash__


ANY_MESSAGE = _AnyText()
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"]


def gotrue_code(response) -> str:
    value: str = response.json()["code"]
    return value


async def raw(gotrue: GoTrue, method: str, path: str, body: str, **kwargs: Any):
    headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
    return await gotrue.call(method, path, content=body.encode(), headers=headers, **kwargs)


def credentials_and(field: str, number: str) -> str:
    """A body with an email, a password and `{field: {"n": number}}`, the number as written (no
    JSON encoder writes NaN or 1e999 as such)."""
    start = json.dumps({"email": unique_email(), "password": PASSWORD})[:-1]
    return f'{start}, "{field}": {{"n": {number}}}}}'


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"n": value}
    return value


class TestNonFiniteNumbers:
    @pytest.mark.parametrize("number", NON_FINITE)
    async def test_signup_data_with_a_non_finite_number_is_bad_json(self, gotrue, number):
        body = (
            f'{{"email": "{unique_email()}", "password": "{PASSWORD}", "data": {{"n": {number}}}}}'
        )

        response = await raw(gotrue, "POST", "/signup", body)

        assert response.status_code == 400, response.text
        assert gotrue_code(response) == "bad_json"

    @pytest.mark.parametrize("number", NON_FINITE)
    async def test_user_update_with_a_non_finite_number_is_bad_json(self, gotrue, number):
        session = await gotrue.session()

        response = await raw(
            gotrue, "PUT", "/user", f'{{"data": {{"n": {number}}}}}', bearer=session["access_token"]
        )

        assert response.status_code == 400, response.text
        assert gotrue_code(response) == "bad_json"

    @pytest.mark.parametrize("field", ["user_metadata", "app_metadata"])
    @pytest.mark.parametrize("number", NON_FINITE)
    async def test_admin_create_with_a_non_finite_number_is_bad_json(self, gotrue, field, number):
        body = credentials_and(field, number)

        response = await gotrue.admin(
            "POST", "/users", content=body.encode(), headers={"Content-Type": "application/json"}
        )

        assert response.status_code == 400, response.text
        assert gotrue_code(response) == "bad_json"

    async def test_after_a_refused_sign_up_the_admin_list_still_answers(self, gotrue):
        await raw(
            gotrue,
            "POST",
            "/signup",
            f'{{"email": "{unique_email()}", "password": "{PASSWORD}", "data": {{"n": NaN}}}}',
        )
        await gotrue.session()

        response = await gotrue.admin("GET", "/users")

        assert response.status_code == 200, response.text

    @pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
    async def test_a_row_written_before_the_rule_is_served_in_the_list(self, gotrue, make_app):
        """SQLite took NaN before the parser refused it; such a row must not break a page."""
        session = await gotrue.session()
        database = gotrue.client._transport.app.state.services.database
        await database.write(
            lambda conn: conn.execute(
                sa.text("UPDATE identity_users SET user_metadata = :m WHERE id = :id"),
                {
                    "m": '{"n": NaN, "m": Infinity, "kept": 1}',
                    "id": uuid.UUID(session["user"]["id"]).hex,
                },
            )
        )

        listed = await gotrue.admin("GET", "/users")
        signed_in = await gotrue.sign_in(session["user"]["email"])

        assert listed.status_code == 200, listed.text
        (user,) = [u for u in listed.json()["users"] if u["id"] == session["user"]["id"]]
        assert user["user_metadata"] == {"n": None, "m": None, "kept": 1}
        assert signed_in.status_code == 200, signed_in.text


class TestNesting:
    @pytest.mark.parametrize(
        ("method", "path", "params", "admin"),
        [
            ("POST", "/signup", {}, False),
            ("POST", "/token", {"grant_type": "password"}, False),
            ("POST", "/token", {"grant_type": "refresh_token"}, False),
            ("PUT", "/user", {}, False),
            ("POST", "/users", {}, True),
        ],
        ids=["signup", "password-grant", "refresh-grant", "user-update", "admin-create"],
    )
    async def test_a_body_nested_a_hundred_thousand_deep_is_bad_json(
        self, gotrue, method, path, params, admin
    ):
        body = ("[" * 100_000).encode()
        headers = {"Content-Type": "application/json"}
        if admin:
            response = await gotrue.admin(method, path, content=body, headers=headers)
        else:
            session = await gotrue.session()
            bearer = session["access_token"] if path == "/user" else None
            response = await gotrue.call(
                method, path, content=body, headers=headers, params=params, bearer=bearer
            )

        assert response.status_code == 400, response.text
        assert gotrue_code(response) == "bad_json"

    async def test_metadata_nested_past_the_bound_is_bad_json(self, gotrue):
        response = await gotrue.signup(data=nested(300))

        assert response.status_code == 400, response.text
        assert gotrue_code(response) == "bad_json"

    async def test_metadata_nested_within_the_bound_is_stored_and_served(self, gotrue):
        data = nested(MAX_JSON_DEPTH - 2)

        response = await gotrue.signup(data=data)

        assert response.status_code == 200, response.text
        assert response.json()["user"]["user_metadata"] == data


class TestPagination:
    @pytest.mark.parametrize(
        "page", ["99999999999999999999", str(2**64), str(2**63 - 1), "²", "-1", "1.5"]
    )
    async def test_a_page_that_is_not_a_small_ascii_number_is_400(self, gotrue, page):
        response = await gotrue.admin("GET", "/users", params={"page": page})

        assert response.status_code == 400, response.text
        assert gotrue_code(response) == "validation_failed"

    @pytest.mark.parametrize("per_page", ["١٢", str(2**64)])
    async def test_a_page_size_that_is_not_a_small_ascii_number_is_400(self, gotrue, per_page):
        response = await gotrue.admin("GET", "/users", params={"per_page": per_page})

        assert response.status_code == 400, response.text

    async def test_a_page_past_the_end_is_empty(self, gotrue):
        response = await gotrue.admin("GET", "/users", params={"page": str(2**31 - 1)})

        assert response.status_code == 200, response.text
        assert response.json()["users"] == []


class TestAppMetadataIsTheAdmins:
    async def test_a_user_writing_app_metadata_is_not_admin_and_nothing_changes(self, gotrue):
        session = await gotrue.session()

        response = await gotrue.call(
            "PUT",
            "/user",
            json={"app_metadata": {"role": "admin"}, "data": {"n": 1}},
            bearer=session["access_token"],
        )
        after = await gotrue.call("GET", "/user", bearer=session["access_token"])

        assert response.status_code == 403, response.text
        assert gotrue_code(response) == "not_admin"
        assert "role" not in after.json()["app_metadata"]
        assert "n" not in after.json()["user_metadata"]

    async def test_a_null_app_metadata_is_no_change(self, gotrue):
        session = await gotrue.session()

        response = await gotrue.call(
            "PUT", "/user", json={"app_metadata": None}, bearer=session["access_token"]
        )

        assert response.status_code == 200, response.text


class TestRequestLimitsInGoTruesFormat:
    async def test_a_declared_body_over_the_limit_is_gotrues_413(self, make_gotrue):
        gotrue = await make_gotrue(max_body_bytes=1024)

        response = await raw(gotrue, "POST", "/signup", "x" * 2048)

        assert response.status_code == 413
        assert response.json() == {"code": "request_too_large", "message": ANY_MESSAGE}
        assert response.headers["x-sb-error-code"] == "request_too_large"

    async def test_a_streamed_body_over_the_limit_has_the_same_format(self, make_gotrue):
        gotrue = await make_gotrue(max_body_bytes=1024)

        async def chunks():
            for _ in range(16):
                yield b"x" * 256

        response = await gotrue.call(
            "POST", "/signup", content=chunks(), headers={"Content-Type": "application/json"}
        )

        assert response.status_code == 413
        assert set(response.json()) == {"code", "message"}
        assert gotrue_code(response) == "request_too_large"

    async def test_large_headers_are_gotrues_431_and_the_app_keeps_its_own(self, gotrue):
        big = {"Cookie": "a=" + "x" * 40_000}

        under = await gotrue.call("GET", "/settings", headers=big)
        outside = await gotrue.client.get("/health", headers=big)

        assert under.status_code == 431
        assert under.json() == {"code": "request_headers_too_large", "message": ANY_MESSAGE}
        assert under.headers["x-sb-error-code"] == "request_headers_too_large"
        assert "xxxx" not in under.text
        assert outside.status_code == 431
        assert outside.json()["code"] == "request_headers_too_large"
        assert set(outside.json()) == {"code", "message", "details"}


class TestMethodNotAllowed:
    async def test_a_405_on_a_user_names_every_method_served(self, gotrue):
        response = await gotrue.admin("PATCH", f"/users/{uuid.uuid4()}")

        assert response.status_code == 405
        assert response.headers["Allow"] == "DELETE, GET, PUT"


class TestRefreshGrantLimit:
    async def test_random_refresh_tokens_from_one_address_are_429_with_retry_after(
        self, make_gotrue
    ):
        gotrue = await make_gotrue(rate_limit_refresh_per_address="5/minute")

        answers = [await gotrue.refresh(uuid.uuid4().hex + uuid.uuid4().hex) for _ in range(8)]

        assert [a.status_code for a in answers[:5]] == [400] * 5
        assert {a.status_code for a in answers[5:]} == {429}
        assert gotrue_code(answers[-1]) == "over_request_rate_limit"
        assert int(answers[-1].headers["Retry-After"]) > 0


class TestTokensCarryJson:
    async def test_the_access_token_payload_is_json(self, gotrue):
        session = await gotrue.session(data={"n": 1.5, "deep": nested(4)})
        payload = session["access_token"].split(".")[1]
        decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))

        assert (
            json.loads(decoded, parse_constant=lambda c: pytest.fail(c))["user_metadata"]["n"]
            == 1.5
        )
