"""One error body everywhere, including the framework's own 404, 405, 422 and 500."""

from __future__ import annotations

import contextlib

import httpx
import pytest

from backend.app.main import create_app
from backend.tests.api.test_auth import assert_error
from backend.tests.helpers import AuthApi
from backend.tests.outage import CuttableProxy


class TestFrameworkErrors:
    async def test_unknown_route_is_404_error_body(self, client):
        assert_error(await client.get("/nope"), 404, "not_found")

    async def test_wrong_method_is_405_error_body(self, client):
        assert_error(await client.put("/auth/me"), 405, "method_not_allowed")

    @pytest.mark.parametrize(
        ("method", "path", "allow"),
        [
            ("OPTIONS", "/items", "GET, POST"),
            ("PUT", "/items/some-id", "DELETE, GET, PATCH"),
            ("PUT", "/auth/me", "GET"),
        ],
    )
    async def test_405_allow_names_every_method_of_the_path(self, client, method, path, allow):
        response = await client.request(method, path)

        assert_error(response, 405, "method_not_allowed")
        assert response.headers["allow"] == allow

    async def test_body_that_is_not_utf8_is_422_error_body(self, api):
        await api.fetch_csrf()

        response = await api.client.post(
            "/auth/signin",
            content=b"\xff\xfe",
            headers={"X-CSRF-Token": api.csrf_token, "Content-Type": "application/json"},
        )

        assert_error(response, 422, "validation_error")

    async def test_malformed_json_is_422_error_body(self, api):
        await api.fetch_csrf()

        response = await api.client.post(
            "/auth/signin",
            content=b'{"email": "a@example.com", "password": "hunter2-secret',
            headers={"X-CSRF-Token": api.csrf_token, "Content-Type": "application/json"},
        )

        assert_error(response, 422, "validation_error")
        assert "hunter2-secret" not in response.text

    async def test_unhandled_exception_is_500_error_body_without_internals(self, app):
        """A crash answers the standard body and says nothing about its cause."""

        @app.get("/boom")
        async def boom() -> None:
            raise RuntimeError("internal detail with secret-ish text")

        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.get("/boom")

        assert_error(response, 500, "internal_error")
        assert "secret-ish" not in response.text


class TestHealth:
    async def test_health_is_ok_with_database(self, client):
        response = await client.get("/health")

        assert response.status_code == 200
        assert response.json() == {
            "status": "ok",
            "database": "ok",
            "rateLimitStore": "not_configured",
        }

    @pytest.mark.postgres
    @pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
    async def test_health_is_503_when_database_is_down(self, make_settings, postgres_url):
        """The database server goes away under a running app: 503 with the error body."""
        async with app_behind_cuttable_proxy(make_settings, postgres_url) as (client, proxy):
            before = await client.get("/health")
            await proxy.cut()
            after = await client.get("/health")

        assert before.status_code == 200
        body = assert_error(after, 503, "database_unavailable")
        assert body["details"]["database"] == "down"


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
class TestProviderUnavailable:
    async def test_refresh_while_database_is_down_is_503_and_keeps_the_cookie(
        self, make_settings, postgres_url
    ):
        """A passing outage must not sign anyone out: 503, and no Set-Cookie that clears."""
        async with app_behind_cuttable_proxy(make_settings, postgres_url) as (client, proxy):
            api = AuthApi(client)
            await api.signed_in_user()
            await proxy.cut()
            response = await api.refresh()

        assert_error(response, 503, "provider_unavailable")
        assert "set-cookie" not in response.headers


# A route on the embedded provider's session read (asyncpg's own pool) and one on SQLAlchemy's.
PATHS = ("/auth/me", "/items")


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
class TestDatabaseCut:
    """The database goes away under a running app: every route that needs it says 503."""

    @pytest.mark.parametrize(
        ("method", "path", "body"),
        [
            ("GET", "/items", None),
            ("POST", "/items", {"title": "t"}),
            ("GET", "/items/{id}", None),
            ("PATCH", "/items/{id}", {"title": "t2"}),
            ("DELETE", "/items/{id}", None),
        ],
    )
    async def test_data_route_while_database_is_down_is_503_with_retry_after(
        self, make_settings, postgres_url, method, path, body
    ):
        async with app_behind_cuttable_proxy(make_settings, postgres_url) as (client, proxy):
            user = await AuthApi(client).signed_in_user()
            item = (await client.post("/items", json={"title": "t"}, headers=user.auth)).json()
            await proxy.cut()
            response = await client.request(
                method, path.format(id=item["id"]), json=body, headers=user.auth
            )

        assert_error(response, 503, "database_unavailable")
        assert int(response.headers["retry-after"]) >= 1

    @pytest.mark.parametrize("path", ["/items", "/health"])
    async def test_route_while_database_hangs_is_503_within_the_timeout(
        self, make_settings, postgres_url, path
    ):
        """The database keeps the connection but never answers: a 503, not a hung request."""
        async with app_behind_cuttable_proxy(
            make_settings, postgres_url, database_timeout_seconds=1
        ) as (client, proxy):
            user = await AuthApi(client).signed_in_user()
            proxy.freeze()
            response = await client.get(path, headers=user.auth)

        assert_error(response, 503, "database_unavailable")

    async def test_database_back_after_a_restart_every_route_answers_at_once(
        self, make_settings, postgres_url
    ):
        """The pooled connections died with the old server: the first requests after it is back
        must not be the ones that find out (no 503 left over once the database answers)."""
        async with app_behind_cuttable_proxy(make_settings, postgres_url) as (client, proxy):
            user = await AuthApi(client).signed_in_user()
            before = [(await client.get(path, headers=user.auth)).status_code for path in PATHS]
            await proxy.cut()
            await proxy.restore()
            after = [(await client.get(path, headers=user.auth)).status_code for path in PATHS]

        assert before == after == [200, 200]

    async def test_me_while_database_is_down_is_503_provider_unavailable(
        self, make_settings, postgres_url
    ):
        """/auth/me asks the identity provider first: for the embedded one, its database."""
        async with app_behind_cuttable_proxy(make_settings, postgres_url) as (client, proxy):
            user = await AuthApi(client).signed_in_user()
            await proxy.cut()
            response = await client.get("/auth/me", headers=user.auth)

        assert_error(response, 503, "provider_unavailable")
        assert int(response.headers["retry-after"]) >= 1

    @pytest.mark.parametrize("route", ["/auth/signup", "/auth/signin", "/auth/logout"])
    async def test_auth_route_while_database_is_down_is_503_provider_unavailable(
        self, make_settings, postgres_url, route
    ):
        async with app_behind_cuttable_proxy(make_settings, postgres_url) as (client, proxy):
            api = AuthApi(client)
            user = await api.signed_in_user()
            await proxy.cut()
            response = await api.post(route, {"email": user.email, "password": user.password})

        assert_error(response, 503, "provider_unavailable")
        assert "set-cookie" not in response.headers


@contextlib.asynccontextmanager
async def app_behind_cuttable_proxy(make_settings, postgres_url, **settings):
    proxy = CuttableProxy()
    await proxy.start()
    database = postgres_url.rsplit("/", 1)[1]
    app = create_app(make_settings(database_url=f"{proxy.database_url}/{database}", **settings))
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield client, proxy
    finally:
        await proxy.cut()  # closes what a frozen proxy still holds open
