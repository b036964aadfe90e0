"""The /items contract: each user's own items only, the error body on every failure."""

from __future__ import annotations

import json
import uuid

import pytest

from backend.tests.api.test_auth import assert_error
from backend.tests.helpers import AuthApi
from backend.tests.providers import both_identity_providers  # noqa: F401 -- both providers


class TestItems:
    async def test_items_crud_roundtrip(self, client, user):
        """Create, read, list, update and delete one item with camelCase bodies."""
        created = await client.post(
            "/items", json={"title": "  First idea ", "description": "d"}, headers=user.auth
        )
        item = created.json()
        fetched = await client.get(f"/items/{item['id']}", headers=user.auth)
        patched = await client.patch(
            f"/items/{item['id']}", json={"title": "Better idea"}, headers=user.auth
        )
        deleted = await client.delete(f"/items/{item['id']}", headers=user.auth)
        after = await client.get(f"/items/{item['id']}", headers=user.auth)

        assert created.status_code == 201
        assert set(item) == {"id", "title", "description", "createdAt", "updatedAt"}
        assert item["title"] == "First idea"
        assert fetched.json() == item
        assert patched.status_code == 200
        assert patched.json()["title"] == "Better idea"
        assert patched.json()["description"] == "d"
        assert patched.json()["updatedAt"] >= item["updatedAt"]
        assert deleted.status_code == 204
        assert deleted.content == b""
        assert_error(after, 404, "not_found")

    async def test_items_list_is_newest_first(self, client, user):
        for title in ("one", "two", "three"):
            await client.post("/items", json={"title": title}, headers=user.auth)

        response = await client.get("/items", headers=user.auth)

        assert [item["title"] for item in response.json()["items"]] == ["three", "two", "one"]

    async def test_items_of_another_user_are_invisible_and_404(self, client, user, app):
        """Another user's item: absent from the list, and 404 (not 403) for get/patch/delete."""
        other = await AuthApi(client).signed_in_user()
        mine = (await client.post("/items", json={"title": "mine"}, headers=user.auth)).json()

        listed = await client.get("/items", headers=other.auth)
        got = await client.get(f"/items/{mine['id']}", headers=other.auth)
        patched = await client.patch(
            f"/items/{mine['id']}", json={"title": "x"}, headers=other.auth
        )
        deleted = await client.delete(f"/items/{mine['id']}", headers=other.auth)
        still_mine = await client.get(f"/items/{mine['id']}", headers=user.auth)

        assert listed.json() == {"items": []}
        assert_error(got, 404, "not_found")
        assert_error(patched, 404, "not_found")
        assert_error(deleted, 404, "not_found")
        assert still_mine.json()["title"] == "mine"

    @pytest.mark.parametrize("item_id", ["not-a-uuid", str(uuid.uuid4())])
    async def test_items_unknown_id_is_404(self, client, user, item_id):
        response = await client.get(f"/items/{item_id}", headers=user.auth)

        assert_error(response, 404, "not_found")

    @pytest.mark.parametrize(
        "body",
        [{}, {"title": ""}, {"title": "   "}, {"title": "x" * 201}, {"title": "ok", "userId": "x"}],
    )
    async def test_items_create_invalid_body_is_422(self, client, user, body):
        response = await client.post("/items", json=body, headers=user.auth)

        assert_error(response, 422, "validation_error")

    async def test_items_patch_invalid_title_is_422(self, client, user):
        item = (await client.post("/items", json={"title": "t"}, headers=user.auth)).json()

        response = await client.patch(f"/items/{item['id']}", json={"title": ""}, headers=user.auth)

        assert_error(response, 422, "validation_error")

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", "/items"),
            ("POST", "/items"),
            ("GET", f"/items/{uuid.uuid4()}"),
            ("PATCH", f"/items/{uuid.uuid4()}"),
            ("DELETE", f"/items/{uuid.uuid4()}"),
        ],
    )
    async def test_items_without_token_is_401(self, client, method, path):
        response = await client.request(method, path, json={"title": "t"})

        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"


class TestItemValues:
    """Values no column can hold are 422 before they reach SQL, on both backends."""

    @pytest.mark.parametrize("body", [{"title": None}, {"description": None}])
    async def test_items_patch_null_field_is_422_and_changes_nothing(self, client, user, body):
        item = (await client.post("/items", json={"title": "t"}, headers=user.auth)).json()

        response = await client.patch(f"/items/{item['id']}", json=body, headers=user.auth)
        after = await client.get(f"/items/{item['id']}", headers=user.auth)

        assert_error(response, 422, "validation_error")
        assert after.json() == item

    @pytest.mark.parametrize(
        "body",
        [
            {"title": "nul \x00 here"},
            {"title": "ok", "description": "nul \x00 here"},
            {"title": "lone \ud800 surrogate"},
            {"title": "ok", "description": "lone \udfff surrogate"},
        ],
    )
    async def test_items_create_unstorable_text_is_422(self, client, user, body):
        response = await client.post(
            "/items", content=_json_with_escapes(body), headers=_json_headers(user)
        )
        listed = await client.get("/items", headers=user.auth)

        assert_error(response, 422, "validation_error")
        assert listed.json() == {"items": []}

    async def test_items_patch_nul_is_422(self, client, user):
        item = (await client.post("/items", json={"title": "t"}, headers=user.auth)).json()

        response = await client.patch(
            f"/items/{item['id']}",
            content=_json_with_escapes({"title": "a\x00b"}),
            headers=_json_headers(user),
        )

        assert_error(response, 422, "validation_error")

    async def test_items_keep_serving_after_a_refused_value(self, client, user):
        """A refused value is a 422, not a 500 that would drop the connection."""
        await client.patch(f"/items/{uuid.uuid4()}", json={"title": None}, headers=user.auth)

        response = await client.get("/items", headers=user.auth)

        assert response.status_code == 200


def _json_with_escapes(body: dict[str, str]) -> bytes:
    # json.dumps escapes NUL and lone surrogates as \u0000 / \ud800, as a client would send them.
    return json.dumps(body).encode()


def _json_headers(user) -> dict[str, str]:
    return {**user.auth, "Content-Type": "application/json"}
