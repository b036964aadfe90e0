"""fastapi-users, set up as its documentation's full SQLAlchemy example does, written here from
that documentation: a `User` table from `SQLAlchemyBaseUserTableUUID`, `SQLAlchemyUserDatabase`
on an async session per request, a `UserManager` (`UUIDIDMixin`, `BaseUserManager`), a JWT
`AuthenticationBackend` (`BearerTransport` + `JWTStrategy`), and the auth, register,
reset-password, verify and users routers under the documented prefixes. `GET /users/me` is what
is measured.

The one change: the database URL comes from `BENCH_PEER_DATABASE_URL`
(`sqlite+aiosqlite:///…` or `postgresql+asyncpg://…`); the tables are created at start-up as the
example does. No hook prints on register (the example's `on_after_register` only prints).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from fastapi_users import (  # type: ignore[import-not-found,unused-ignore]
    BaseUserManager,
    FastAPIUsers,
    UUIDIDMixin,
    schemas,
)
from fastapi_users.authentication import (  # type: ignore[import-not-found,unused-ignore]
    AuthenticationBackend,
    BearerTransport,
    JWTStrategy,
)
from fastapi_users.db import (  # type: ignore[import-not-found,unused-ignore]
    SQLAlchemyBaseUserTableUUID,
    SQLAlchemyUserDatabase,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

__all__ = ["create_app"]

SECRET = "bench-only fastapi-users secret, loopback"


class Base(DeclarativeBase):
    pass


class User(SQLAlchemyBaseUserTableUUID, Base):  # type: ignore[misc,unused-ignore]
    pass


class UserRead(schemas.BaseUser[uuid.UUID]):  # type: ignore[misc,unused-ignore]
    pass


class UserCreate(schemas.BaseUserCreate):  # type: ignore[misc,unused-ignore]
    pass


class UserUpdate(schemas.BaseUserUpdate):  # type: ignore[misc,unused-ignore]
    pass


class UserManager(UUIDIDMixin, BaseUserManager[User, uuid.UUID]):  # type: ignore[misc,unused-ignore]
    reset_password_token_secret = SECRET
    verification_token_secret = SECRET


# As in the documentation, at module level; only the URL comes from the runner.
engine = create_async_engine(os.environ["BENCH_PEER_DATABASE_URL"])
async_session_maker = async_sessionmaker(engine, expire_on_commit=False)


async def get_async_session() -> AsyncIterator[AsyncSession]:
    async with async_session_maker() as session:
        yield session


async def get_user_db(
    session: Annotated[AsyncSession, Depends(get_async_session)],
) -> AsyncIterator[Any]:
    yield SQLAlchemyUserDatabase(session, User)


async def get_user_manager(user_db: Annotated[Any, Depends(get_user_db)]) -> AsyncIterator[Any]:
    yield UserManager(user_db)


def get_jwt_strategy() -> Any:
    return JWTStrategy(secret=SECRET, lifetime_seconds=3600)


auth_backend = AuthenticationBackend(
    name="jwt",
    transport=BearerTransport(tokenUrl="auth/jwt/login"),
    get_strategy=get_jwt_strategy,
)
fastapi_users = FastAPIUsers[User, uuid.UUID](get_user_manager, [auth_backend])


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield
    await engine.dispose()


def create_app() -> FastAPI:
    app = FastAPI(lifespan=lifespan)
    app.include_router(
        fastapi_users.get_auth_router(auth_backend), prefix="/auth/jwt", tags=["auth"]
    )
    app.include_router(
        fastapi_users.get_register_router(UserRead, UserCreate), prefix="/auth", tags=["auth"]
    )
    app.include_router(fastapi_users.get_reset_password_router(), prefix="/auth", tags=["auth"])
    app.include_router(fastapi_users.get_verify_router(UserRead), prefix="/auth", tags=["auth"])
    app.include_router(
        fastapi_users.get_users_router(UserRead, UserUpdate), prefix="/users", tags=["users"]
    )
    return app
