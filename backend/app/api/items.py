"""The /items routes: each user's own items, reached only through the user-scoped client.

Another user's item answers 404, exactly like an item that does not exist, so ids cannot be probed.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from backend.app.api.deps import UserScopedDep
from backend.app.api.models import ItemCreate, ItemList, ItemOut, ItemUpdate
from backend.app.core.errors import NotFound

__all__ = ["router"]

router = APIRouter(
    prefix="/items",
    tags=["items"],
    responses={401: {"description": "`unauthorized`"}, 422: {"description": "`validation_error`"}},
)
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "`not_found`"}}


def _found(item: dict[str, Any] | None) -> dict[str, Any]:
    if item is None:
        raise NotFound("Item not found")
    return item


@router.get("", response_model=ItemList)
async def list_items(scoped: UserScopedDep) -> dict[str, Any]:
    """The caller's items, newest first."""
    return {"items": await scoped.list_items()}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ItemOut)
async def create_item(body: ItemCreate, scoped: UserScopedDep) -> dict[str, Any]:
    return await scoped.create_item(title=body.title, description=body.description)


@router.get("/{item_id}", response_model=ItemOut, responses=_NOT_FOUND)
async def get_item(item_id: str, scoped: UserScopedDep) -> dict[str, Any]:
    return _found(await scoped.get_item(item_id))


@router.patch("/{item_id}", response_model=ItemOut, responses=_NOT_FOUND)
async def update_item(item_id: str, body: ItemUpdate, scoped: UserScopedDep) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        return _found(await scoped.get_item(item_id))
    return _found(await scoped.update_item(item_id, changes))


@router.delete(
    "/{item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_NOT_FOUND,
)
async def delete_item(item_id: str, scoped: UserScopedDep) -> None:
    if not await scoped.delete_item(item_id):
        raise NotFound("Item not found")
