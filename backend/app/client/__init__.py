"""A Python client of the My Ideas API: `PasswordAuth` (an httpx auth flow) and typed calls.

    from backend.app.client import Client, PasswordAuth

    with Client("http://localhost:8000", auth=PasswordAuth(email, password)) as api:
        print(api.me().email, [item.title for item in api.list_items()])

`PasswordAuth` also works on its own with any `httpx.Client` or `httpx.AsyncClient`.
"""

from backend.app.client.auth import PasswordAuth
from backend.app.client.clients import AsyncClient, Client
from backend.app.client.errors import ApiError

__all__ = ["ApiError", "AsyncClient", "Client", "PasswordAuth"]
