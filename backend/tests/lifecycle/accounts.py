"""What the lifecycle tests need from either identity provider's side, as it is done there."""

from __future__ import annotations

from typing import Any

import httpx
import sqlalchemy as sa

from backend.app.core.settings import AuthProvider
from backend.app.db.tables import identity_users
from backend.app.identity.emails import email_key
from backend.tests.gotrue_server import SERVICE_ROLE_KEY


def tokens_per_mail(services: Any) -> int:
    """Account-token rows one lifecycle mail stores: a link; GoTrue's mail (the supabase
    provider's project) also carries a 6-digit code, stored beside it, as a hash too."""
    return 2 if services.settings.auth_provider is AuthProvider.SUPABASE else 1


async def delete_user(services: Any, user_id: str) -> None:
    """Delete the user where identity lives: the embedded store, or the project's admin API."""
    if services.settings.auth_provider is not AuthProvider.SUPABASE:
        assert await services.identity.store.delete_user(user_id)
        return
    headers = {"apikey": SERVICE_ROLE_KEY, "Authorization": f"Bearer {SERVICE_ROLE_KEY}"}
    async with httpx.AsyncClient(base_url=services.settings.supabase_url) as client:
        response = await client.delete(f"/auth/v1/admin/users/{user_id}", headers=headers)
    assert response.status_code == 200, response.text


async def email_confirmed_at(services: Any, email: str) -> Any:
    """The stored user's confirmation time (None: unconfirmed). Asked of the table: no session
    can be had before confirming, and the GoTrue-compatible project shares the database."""

    def read(conn: sa.Connection) -> Any:
        return conn.execute(
            sa.select(identity_users.c.email_confirmed_at).where(
                identity_users.c.email == email_key(email)
            )
        ).scalar_one()

    return await services.database.read(read)
