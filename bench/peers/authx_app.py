"""AuthX, set up as its documentation shows: `AuthX(config=AuthXConfig(...))`, its error
handlers, and `Depends(auth.access_token_required)` on the protected route, which returns the
caller's id like our `/bench/protected`. `POST /login?uid=` issues the token the bench uses (AuthX
keeps no users: its documented login checks the password itself, then calls
`create_access_token`). The route is `async def` as ours is, so the two differ in the auth layer
only, not in a thread hop.
"""

from __future__ import annotations

from typing import Annotated, Any

from authx import AuthX, AuthXConfig  # type: ignore[import-not-found,unused-ignore]
from fastapi import Depends, FastAPI

__all__ = ["create_app"]

SECRET = "bench-only authx secret, loopback"


# As in the documentation, at module level.
auth = AuthX(config=AuthXConfig(JWT_SECRET_KEY=SECRET, JWT_TOKEN_LOCATION=["headers"]))


async def login(uid: str) -> dict[str, str]:
    return {"access_token": auth.create_access_token(uid=uid)}


async def protected(payload: Annotated[Any, Depends(auth.access_token_required)]) -> dict[str, str]:
    return {"id": payload.sub}


def create_app() -> FastAPI:
    app = FastAPI()
    auth.handle_errors(app)
    app.post("/login")(login)
    app.get("/bench/protected")(protected)
    return app
