"""The embedded provider's store: every statement on its users, sessions and refresh tokens.

It runs as the service role: nothing here is filtered by row-level security, and nothing here is
reachable from a route's input but through the provider (routes hold a `UserScopedClient`).
Keeping the privileged path this small is what makes the RLS policies worth having.

Refresh tokens are stored only as SHA-256. Rotation is one conditional `UPDATE` (`rotate`): of any
number of concurrent refreshes with one token, across processes, exactly one sees a row come back.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from backend.app.core.claims import AccessClaims
from backend.app.core.errors import RefreshTokenInvalid, UserAlreadyExists, UserBanned
from backend.app.db.engine import Database, Query
from backend.app.db.tables import (
    identity_account_tokens,
    identity_flow_states,
    identity_refresh_tokens,
    identity_sessions,
    identity_users,
    items,
    user_profile,
    utcnow,
)
from backend.app.identity.base import LiveSession, SignOutScope

from .pkce import CodeChallenge, FlowStateNotFound

__all__ = [
    "EMAIL_CHANGE",
    "EMAIL_CHANGES",
    "EMAIL_CHANGE_CURRENT",
    "EMAIL_CHANGE_NEW",
    "EMAIL_PROVIDER_METADATA",
    "MAGICLINK",
    "REAUTHENTICATION",
    "RESET",
    "SIGNUP",
    "Credentials",
    "FlowState",
    "Grant",
    "IdentityStore",
    "LiveSession",
    "NewAuthCode",
    "NewFlowState",
    "Reused",
    "UserRecord",
    "code_hash",
    "hash_token",
    "issue_account_token_in",
    "issue_email_change_in",
    "merge_metadata",
    "obfuscated",
    "pending_email_change_in",
]

# GoTrue's `app_metadata` of a user who signs in with an email and a password.
EMAIL_PROVIDER_METADATA: dict[str, Any] = {"provider": "email", "providers": ["email"]}
# The kinds of account token, never interchangeable (docs/account-lifecycle.md).
SIGNUP = "signup"
EMAIL_CHANGE = "email_change"
RESET = "reset"
# GoTrue's API only: a magic link's sign-in, and the nonce of a password change (`/reauthenticate`).
MAGICLINK = "magiclink"
REAUTHENTICATION = "reauth"
# GoTrue's secure email change (`/auth/v1` only): a token to the new address and one to the
# current address, each awaiting the other (GoTrue's `email_change_token_new` / `_current`).
# Verifying one spends it and marks its rows EMAIL_CHANGE_CONFIRMED: GoTrue's
# `email_change_confirm_status` = 1, so the other one applies the change. /auth's verify takes
# neither (it takes EMAIL_CHANGE, a one-step token): that would skip the other address.
EMAIL_CHANGE_NEW = "email_change_new"
EMAIL_CHANGE_CURRENT = "email_change_cur"
EMAIL_CHANGE_CONFIRMED = "email_change_ok"
# Every pending email change's tokens: one pending change per user, as GoTrue's one column.
EMAIL_CHANGES = (EMAIL_CHANGE, EMAIL_CHANGE_NEW, EMAIL_CHANGE_CURRENT)
# How far a reused token may be followed along its successors inside the reuse interval.
_MAX_SUCCESSOR_WALK = 32


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user as GoTrue shows it (no secret in it)."""

    id: str
    email: str
    user_metadata: dict[str, Any]
    app_metadata: dict[str, Any]
    email_confirmed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    last_sign_in_at: datetime | None
    banned_until: datetime | None = None
    invited_at: datetime | None = None
    deleted_at: datetime | None = None

    def banned_at(self, now: datetime) -> bool:
        """GoTrue's `IsBanned`: a ban holds while `banned_until` is in the future."""
        return _banned(self.banned_until, now)


def _banned(banned_until: datetime | None, now: datetime) -> bool:
    return banned_until is not None and now < _as_datetime(banned_until)


def _ban_value(ban_for: timedelta, now: datetime) -> datetime | None:
    """GoTrue's `User.Ban`: a zero duration lifts the ban (null); any other is `now + ban_for`,
    a negative one so in the past, which is no ban."""
    return None if ban_for == timedelta(0) else now + ban_for


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a password sign-in checks: the user and its password hash."""

    user: UserRecord
    password_hash: str

    def __repr__(self) -> str:  # the hash stays out of any log line or traceback
        return f"Credentials(user={self.user!r})"


@dataclass(frozen=True, slots=True)
class Grant:
    """A live session's current refresh token and whom it belongs to; `signed_in_at` is when the
    session started (the `amr` of its access tokens)."""

    user: UserRecord
    session_id: str
    refresh_token: str
    signed_in_at: datetime

    def __repr__(self) -> str:  # keep the token out of any log line or traceback
        return f"Grant(user={self.user!r}, session_id={self.session_id!r})"


class Reused:
    """A rotated token came back after the reuse interval; its session is now revoked."""


_RECORD_COLUMNS = (
    identity_users.c.id,
    identity_users.c.email_as_typed,
    identity_users.c.user_metadata,
    identity_users.c.app_metadata,
    identity_users.c.email_confirmed_at,
    identity_users.c.created_at,
    identity_users.c.updated_at,
    identity_users.c.last_sign_in_at,
    identity_users.c.banned_until,
    identity_users.c.invited_at,
    identity_users.c.deleted_at,
)


@dataclass(frozen=True, slots=True)
class NewFlowState:
    """A PKCE flow state to store with a mail's token: the client's challenge and the kind of
    link (GoTrue's `authentication_method`)."""

    challenge: CodeChallenge
    authentication_method: str


@dataclass(frozen=True, slots=True)
class NewAuthCode:
    """An auth code to give the user's newest flow state of `authentication_method` when a
    PKCE link is spent (only the code's hash)."""

    authentication_method: str
    auth_code_hash: str


@dataclass(frozen=True, slots=True)
class FlowState:
    """A stored flow state whose auth code was issued (the code itself is not stored)."""

    id: str
    user_id: str
    challenge: CodeChallenge
    authentication_method: str
    created_at: datetime
    auth_code_issued_at: datetime | None


def _record(row: Any) -> UserRecord:
    """A row (or a plain tuple: `Database.fetch_one`'s) that starts with _RECORD_COLUMNS."""
    (
        user_id,
        email,
        user_metadata,
        app_metadata,
        confirmed,
        created,
        updated,
        last_sign_in,
        banned,
        invited,
        deleted,
    ) = tuple(row)[: len(_RECORD_COLUMNS)]
    return UserRecord(
        id=user_id,
        email=email,
        user_metadata=dict(user_metadata or {}),
        app_metadata=dict(app_metadata or {}),
        email_confirmed_at=confirmed,
        created_at=created,
        updated_at=updated,
        last_sign_in_at=last_sign_in,
        banned_until=banned,
        invited_at=invited,
        deleted_at=deleted,
    )


def merge_metadata(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """GoTrue's merge: each key of `changes` replaces its value; a null value deletes the key."""
    merged = dict(current)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def obfuscated(user_id: str, value: str) -> str:
    """GoTrue's `obfuscateValue`: base64url (unpadded) of SHA-256 of the user id and the value,
    what a soft-deleted user's address becomes (GoTrue `models/user.go`)."""
    digest = hashlib.sha256((user_id + value).encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def code_hash(email_key: str, code: str) -> str:
    """A mail's 6-digit code is stored as the SHA-256 of the address and the code (as GoTrue's
    `GenerateTokenHash`): the code alone is not unique across users, the pair is."""
    return hash_token(f"{email_key}\n{code}")


_code_hash = code_hash  # for the methods whose `code_hash` parameter hides it


# The statements of each sign-in and refresh, built once.
_CREDENTIALS = Query(
    sa.select(*_RECORD_COLUMNS, identity_users.c.password_hash).where(
        identity_users.c.email == sa.bindparam("email"),
        # A soft-deleted user's address is obfuscated, and its row never signs in again.
        identity_users.c.deleted_at.is_(None),
    )
)
_ROTATE = (
    identity_refresh_tokens.update()
    .where(
        # Not named after a column: those names are reserved for the SET clause.
        identity_refresh_tokens.c.token_hash == sa.bindparam("presented_hash"),
        identity_refresh_tokens.c.revoked_at.is_(None),
    )
    .values(revoked_at=sa.bindparam("now", type_=identity_refresh_tokens.c.revoked_at.type))
    .returning(identity_refresh_tokens.c.session_id)
)
_STORE_TOKEN = identity_refresh_tokens.insert()
_SPENT = sa.select(
    identity_refresh_tokens.c.session_id, identity_refresh_tokens.c.revoked_at
).where(identity_refresh_tokens.c.token_hash == sa.bindparam("presented_hash"))


def _live_session(*, of_user: bool, with_idle_timeout: bool) -> sa.ColumnElement[bool]:
    """The session `:session_id` if it is not revoked, not past its lifetime at `:now`, with
    `of_user` still `:user_id`'s and, with an idle timeout, refreshed (or started) since
    `:used_since`: its newest refresh token is the time of its last use that the server sees
    (ASVS V7.3.1)."""
    clauses = [
        identity_sessions.c.id == sa.bindparam("session_id"),
        identity_sessions.c.revoked_at.is_(None),
        identity_sessions.c.not_after > sa.bindparam("now"),
    ]
    if of_user:
        clauses.append(identity_sessions.c.user_id == sa.bindparam("user_id"))
    if with_idle_timeout:
        clauses.append(
            sa.exists().where(
                identity_refresh_tokens.c.session_id == identity_sessions.c.id,
                identity_refresh_tokens.c.created_at > sa.bindparam("used_since"),
            )
        )
    return sa.and_(*clauses)


class IdentityStore:
    """Users, sessions and refresh tokens in the app's database.

    Args:
        idle_timeout: a session with no refresh for this long is over; None for no idle limit
            (only the absolute one, `not_after`).
    """

    def __init__(self, database: Database, *, idle_timeout: timedelta | None):
        self._db = database
        self._idle_timeout = idle_timeout
        idle = idle_timeout is not None
        # Asked on every `/auth/me`: built and compiled once.
        self._live_user = Query(
            sa.select(
                identity_users.c.id,
                identity_users.c.email_as_typed,
                identity_users.c.email_confirmed_at,
                identity_users.c.banned_until,
            )
            .select_from(identity_sessions.join(identity_users))
            .where(_live_session(of_user=True, with_idle_timeout=idle))
        )
        self._session_owner = (
            sa.select(*_RECORD_COLUMNS, identity_sessions.c.created_at.label("session_created_at"))
            .select_from(identity_sessions.join(identity_users))
            .where(_live_session(of_user=False, with_idle_timeout=idle))
        )

    # Users.

    async def create_user(
        self,
        *,
        email: str,
        email_as_typed: str,
        password_hash: str,
        display_name: str | None,
        user_metadata: dict[str, Any] | None = None,
        app_metadata: dict[str, Any] | None = None,
        email_confirmed: bool = True,
        ban_for: timedelta | None = None,
    ) -> UserRecord:
        """Insert the user and its profile in one transaction; returns the new user.

        Args:
            email: the normalized address (unique); `email_as_typed` is kept for display.
            user_metadata: GoTrue's `user_metadata`; `app_metadata` is merged over the email
                provider's.
            email_confirmed: this server sends no mail, so users are confirmed at sign-up; only
                an admin may create an unconfirmed one.
            ban_for: the admin API's ban (see `_ban_value`); None for none.

        Raises:
            UserAlreadyExists: the email is taken (the unique index decides, not a prior read,
                so two concurrent sign-ups cannot both pass).
        """
        now = utcnow()
        user = UserRecord(
            id=str(uuid.uuid4()),
            email=email_as_typed,
            user_metadata=user_metadata or {},
            app_metadata=merge_metadata(EMAIL_PROVIDER_METADATA, app_metadata or {}),
            email_confirmed_at=now if email_confirmed else None,
            created_at=now,
            updated_at=now,
            last_sign_in_at=None,
            banned_until=_ban_value(ban_for, now) if ban_for is not None else None,
        )

        def insert(conn: Connection) -> None:
            conn.execute(
                identity_users.insert().values(
                    id=user.id,
                    email=email,
                    email_as_typed=email_as_typed,
                    password_hash=password_hash,
                    user_metadata=user.user_metadata,
                    app_metadata=user.app_metadata,
                    email_confirmed_at=user.email_confirmed_at,
                    banned_until=user.banned_until,
                    created_at=now,
                    updated_at=now,
                )
            )
            conn.execute(
                user_profile.insert().values(
                    id=user.id, display_name=display_name, created_at=now, updated_at=now
                )
            )

        try:
            await self._db.write(insert)
        except IntegrityError as exc:
            if "email" in str(exc.orig).lower():
                raise UserAlreadyExists() from exc
            raise
        return user

    async def credentials(self, *, email_key: str) -> Credentials | None:
        """The user with this normalized address and its password hash, in one point read."""
        row = await self._db.fetch_one(_CREDENTIALS, {"email": email_key})
        if row is None:
            return None
        return Credentials(user=_record(row), password_hash=row[-1])

    async def password_hash(self, user_id: str) -> str | None:
        return await self._db.read(
            lambda conn: conn.execute(
                sa.select(identity_users.c.password_hash).where(identity_users.c.id == user_id)
            ).scalar()
        )

    async def user(self, user_id: str) -> UserRecord | None:
        row = await self._db.read(
            lambda conn: conn.execute(
                sa.select(*_RECORD_COLUMNS).where(identity_users.c.id == user_id)
            ).first()
        )
        return None if row is None else _record(row)

    async def users_page(self, *, page: int, per_page: int) -> tuple[list[UserRecord], int]:
        """One page of users, newest first (GoTrue's order), and the number of all users."""

        def read(conn: Connection) -> tuple[list[UserRecord], int]:
            total = conn.execute(sa.select(sa.func.count()).select_from(identity_users)).scalar()
            rows = conn.execute(
                sa.select(*_RECORD_COLUMNS)
                .order_by(identity_users.c.created_at.desc(), identity_users.c.id.desc())
                .limit(per_page)
                .offset((page - 1) * per_page)
            ).all()
            return [_record(row) for row in rows], int(total or 0)

        return await self._db.read(read)

    async def update_user(
        self,
        user_id: str,
        *,
        user_metadata: dict[str, Any] | None = None,
        password_hash: str | None = None,
        keep_session_id: str | None = None,
        app_metadata: dict[str, Any] | None = None,
        email: tuple[str, str] | None = None,
        confirm_email: bool = False,
        ban_for: timedelta | None = None,
    ) -> UserRecord | None:
        """Merge `user_metadata` and `app_metadata` (see `merge_metadata`), set a new password
        hash, a new address (`email`: normalized, as typed) and/or confirm the address, in one
        transaction. A new password ends every session of the user but `keep_session_id`, as
        GoTrue's `UpdatePassword` does: whoever else held a session must prove the new password;
        it also spends every outstanding token of the user (links, codes, pending changes).
        A new address spends every outstanding token of the user too (pending email changes,
        and the links mailed to the old address).
        `ban_for` bans or lifts a ban (see `_ban_value`); None leaves it as it is. A ban ends no
        session, as GoTrue's: while it holds, every sign-in, refresh and bearer check of the user
        is refused; once it is lifted or runs out, the sessions work again.

        Returns:
            The updated user, or None when the user no longer exists.

        Raises:
            UserAlreadyExists: the new address is another user's; nothing is written.
        """

        def update(conn: Connection) -> UserRecord | None:
            current = conn.execute(
                sa.select(identity_users.c.user_metadata, identity_users.c.app_metadata)
                .where(identity_users.c.id == user_id)
                .with_for_update()
            ).first()
            if current is None:
                return None
            changes: dict[str, Any] = {"updated_at": utcnow()}
            if user_metadata is not None:
                changes["user_metadata"] = merge_metadata(
                    dict(current.user_metadata or {}), user_metadata
                )
            if app_metadata is not None:
                changes["app_metadata"] = merge_metadata(
                    dict(current.app_metadata or {}), app_metadata
                )
            if ban_for is not None:
                changes["banned_until"] = _ban_value(ban_for, changes["updated_at"])
            if confirm_email:
                changes["email_confirmed_at"] = sa.func.coalesce(
                    identity_users.c.email_confirmed_at, changes["updated_at"]
                )
            if email is not None:
                taken = conn.execute(
                    sa.select(identity_users.c.id).where(
                        identity_users.c.email == email[0], identity_users.c.id != user_id
                    )
                ).first()
                if taken is not None:
                    raise UserAlreadyExists()
                changes.update(email=email[0], email_as_typed=email[1])
                # What was mailed to the address the account leaves must not sign in after.
                _spend_every_token(conn, user_id=user_id, now=changes["updated_at"])
            if password_hash is not None:
                changes["password_hash"] = password_hash
                others = identity_sessions.c.user_id == user_id
                if keep_session_id is not None:
                    others = sa.and_(others, identity_sessions.c.id != keep_session_id)
                _revoke(conn, others)
                _spend_for_new_password(conn, user_id=user_id, now=changes["updated_at"])
            try:
                conn.execute(
                    identity_users.update().where(identity_users.c.id == user_id).values(**changes)
                )
            except IntegrityError as exc:  # taken by a racing sign-up
                raise UserAlreadyExists() from exc
            row = conn.execute(
                sa.select(*_RECORD_COLUMNS).where(identity_users.c.id == user_id)
            ).one()
            return _record(row)

        return await self._db.write(update)

    async def change_password(
        self, user_id: str, *, password_hash: str, keep_session_id: str | None
    ) -> bool:
        """Set a new password hash, end every session of the user but `keep_session_id`, and
        spend every outstanding token of the user (of every kind), in one transaction. False:
        no user."""

        def change(conn: Connection) -> bool:
            now = utcnow()
            changed = conn.execute(
                identity_users.update()
                .where(identity_users.c.id == user_id)
                .values(password_hash=password_hash, updated_at=now)
                .returning(identity_users.c.id)
            ).first()
            if changed is None:
                return False
            others = identity_sessions.c.user_id == user_id
            if keep_session_id is not None:
                others = sa.and_(others, identity_sessions.c.id != keep_session_id)
            _revoke(conn, others)
            _spend_for_new_password(conn, user_id=user_id, now=now)
            return True

        return await self._db.write(change)

    # Account tokens (the links of the lifecycle's mails).

    async def request_mail(self, enqueue: Callable[[Connection], object]) -> None:
        """A write transaction that runs only `enqueue(conn)`: a mail request's one INSERT,
        the same for an address with an account and one without (the account is looked up
        when the sender resolves it, `issue_account_token_in`)."""
        await self._db.write(enqueue)

    async def issue_account_token(
        self,
        *,
        email_key: str,
        purpose: str,
        token_hash: str,
        expires_at: datetime,
        on_issued: Callable[[Connection, str], None],
        on_unknown: Callable[[Connection], None] | None = None,
        only_unconfirmed: bool = False,
        code_hash: str | None = None,
        invite: bool = False,
        flow: NewFlowState | None = None,
    ) -> bool:
        """For the user with this normalized address: spend its older tokens of `purpose`,
        store the new one and call `on_issued(conn, stored address)` (which enqueues the mail)
        in the same transaction. False, and nothing stored, when there is no such user: then the
        same spending UPDATE runs on no row and `on_unknown(conn)` (the decoy render) is called,
        so the unknown address takes the known one's path (see `request_password_reset`).
        `only_unconfirmed`: a user whose address is confirmed counts as unknown (a resent
        sign-up confirmation). `code_hash`: a second token of the same purpose, the mail's code
        (GoTrue's API); spending either spends both. `invite`: stamp the user's `invited_at`
        in the same transaction (GoTrue's `/invite` and invite links, `mail.go`). `flow`: a PKCE
        flow state of the user, stored in the same transaction (none for an unknown address, as
        GoTrue)."""

        def issue(conn: Connection) -> bool:
            stored = issue_account_token_in(
                conn,
                email_key=email_key,
                purpose=purpose,
                token_hash=token_hash,
                expires_at=expires_at,
                only_unconfirmed=only_unconfirmed,
                code_hash=code_hash,
                flow=flow,
            )
            if stored is None:
                _spend_tokens(conn, user_id=_NO_USER, purpose=purpose, now=utcnow())
                if on_unknown is not None:
                    on_unknown(conn)
                return False
            if invite:
                conn.execute(
                    identity_users.update()
                    .where(identity_users.c.email == email_key)
                    .values(invited_at=utcnow())
                )
            on_issued(conn, stored)
            return True

        return await self._db.write(issue)

    async def issue_email_change(
        self,
        *,
        user_id: str,
        new_email: str,
        new_email_as_typed: str,
        token_hash: str,
        expires_at: datetime,
        on_issued: Callable[[Connection, str], None],
        code_hash: str | None = None,
        purpose: str = EMAIL_CHANGE,
        current_token_hash: str | None = None,
        current_code: str | None = None,
        replaces: tuple[str, ...] = EMAIL_CHANGES,
        flow: NewFlowState | None = None,
    ) -> bool:
        """Spend the user's older email-change tokens, store a new one carrying the new address
        (and `flow`, a PKCE flow state) and call `on_issued(conn, current stored address)`
        (which enqueues both mails), in one transaction. False, and nothing stored, when the
        new address is taken or the user gone. `purpose`, `current_token_hash`, `current_code`
        and `replaces`: GoTrue's secure email change, see `issue_email_change_in`."""

        def issue(conn: Connection) -> bool:
            old_email = issue_email_change_in(
                conn,
                user_id=user_id,
                new_email=new_email,
                new_email_as_typed=new_email_as_typed,
                token_hash=token_hash,
                expires_at=expires_at,
                code_hash=code_hash,
                purpose=purpose,
                current_token_hash=current_token_hash,
                current_code=current_code,
                replaces=replaces,
                flow=flow,
            )
            if old_email is None:
                return False
            on_issued(conn, old_email)
            return True

        return await self._db.write(issue)

    async def confirm_email(
        self,
        *,
        token_hash: str,
        purposes: tuple[str, ...] = (SIGNUP, EMAIL_CHANGE),
        auth_code: NewAuthCode | None = None,
    ) -> UserRecord | None:
        """Spend a sign-up confirmation or email-change token (one conditional UPDATE: of two
        racing confirmations one wins) and confirm the address, or apply the change, and spend
        the user's other tokens of every kind (GoTrue's `Confirm`, `ConfirmEmailChange`: a link
        mailed to the address the account left must not sign in), in one transaction (with
        `auth_code`, issued in it too). None when the token is not usable.

        Raises:
            UserAlreadyExists: the new address of a change was taken meanwhile; nothing is
                written (the token stays as it was).
            FlowStateNotFound: `auth_code` and the user has no such flow state; nothing is
                written, as GoTrue's verify rolls back.
        """

        def confirm(conn: Connection) -> UserRecord | None:
            now = utcnow()
            usable = sa.or_(*(_usable(token_hash, purpose, now) for purpose in purposes))
            spent = conn.execute(
                identity_account_tokens.update()
                .where(usable)
                .values(spent_at=now)
                .returning(
                    identity_account_tokens.c.user_id,
                    identity_account_tokens.c.purpose,
                    identity_account_tokens.c.new_email,
                    identity_account_tokens.c.new_email_as_typed,
                )
            ).first()
            if spent is None:
                return None
            _refuse_banned(conn, spent.user_id, now)
            values: dict[str, Any] = {
                "updated_at": now,
                "email_confirmed_at": sa.func.coalesce(identity_users.c.email_confirmed_at, now),
            }
            if spent.purpose in EMAIL_CHANGES:
                taken = conn.execute(
                    sa.select(identity_users.c.id).where(
                        identity_users.c.email == spent.new_email,
                        identity_users.c.id != spent.user_id,
                    )
                ).first()
                if taken is not None:
                    raise UserAlreadyExists()  # rolls the transaction back
                values.update(
                    email=spent.new_email,
                    email_as_typed=spent.new_email_as_typed,
                    email_confirmed_at=now,
                )
            try:
                conn.execute(
                    identity_users.update()
                    .where(identity_users.c.id == spent.user_id)
                    .values(**values)
                )
            except IntegrityError as exc:  # taken by a racing sign-up
                raise UserAlreadyExists() from exc
            _spend_every_token(conn, user_id=spent.user_id, now=now)
            if auth_code is not None:
                _issue_auth_code(conn, auth_code, user_id=spent.user_id, now=now)
            row = conn.execute(
                sa.select(*_RECORD_COLUMNS).where(identity_users.c.id == spent.user_id)
            ).first()
            return None if row is None else _record(row)

        return await self._db.write(confirm)

    async def confirm_email_change_once(
        self, *, token_hash: str, purposes: tuple[str, ...]
    ) -> tuple[str, bool] | None:
        """GoTrue's secure email change, the first of its two verifies (`emailChangeVerify`
        with `email_change_confirm_status` 0): spend a usable token of `purposes` (one side,
        its link and code) and mark that side confirmed, in one transaction under the user's
        row lock, so of two verifies racing, one is the first and the other applies the change.

        Returns:
            The token's user and whether this was the first (False: the other side was
            confirmed already, so this token applies the change, by `confirm_email`: nothing
            is spent here); None when no usable token of `purposes` has this hash.

        Raises:
            UserBanned: the token's user is banned; nothing is written (as `confirm_email`).
        """

        def confirm_once(conn: Connection) -> tuple[str, bool] | None:
            now = utcnow()
            usable = sa.or_(*(_usable(token_hash, purpose, now) for purpose in purposes))
            found = conn.execute(
                sa.select(
                    identity_account_tokens.c.user_id, identity_account_tokens.c.purpose
                ).where(usable)
            ).first()
            if found is None:
                return None
            _refuse_banned(conn, found.user_id, now)  # GoTrue's verify, before emailChangeVerify
            conn.execute(
                sa.select(identity_users.c.id)
                .where(identity_users.c.id == found.user_id)
                .with_for_update()
            )
            confirmed = conn.execute(
                sa.select(identity_account_tokens.c.id).where(
                    identity_account_tokens.c.user_id == found.user_id,
                    identity_account_tokens.c.purpose == EMAIL_CHANGE_CONFIRMED,
                )
            ).first()
            if confirmed is not None:
                return found.user_id, False
            spent = conn.execute(  # still usable once the lock is ours: a racing verify lost
                identity_account_tokens.update()
                .where(_usable(token_hash, found.purpose, now))
                .values(spent_at=now, purpose=EMAIL_CHANGE_CONFIRMED)
                .returning(identity_account_tokens.c.id)
            ).first()
            if spent is None:
                return None
            conn.execute(  # the side's other half: its code, or its link
                identity_account_tokens.update()
                .where(
                    identity_account_tokens.c.user_id == found.user_id,
                    identity_account_tokens.c.purpose == found.purpose,
                    identity_account_tokens.c.spent_at.is_(None),
                )
                .values(spent_at=now, purpose=EMAIL_CHANGE_CONFIRMED)
            )
            return found.user_id, True

        return await self._db.write(confirm_once)

    async def spend_sign_in_token(
        self, *, token_hash: str, purposes: tuple[str, ...], auth_code: NewAuthCode | None = None
    ) -> UserRecord | None:
        """Spend a reset or magic-link token (GoTrue's recovery and magic-link verify: one
        conditional UPDATE, of two racing verifies one wins), spend the user's other tokens of
        every kind (GoTrue's `Recover`) and confirm the address (the link proved the mailbox),
        in one transaction (with `auth_code`, issued in it too). None when the token is not
        usable. The caller opens the session.

        Raises:
            FlowStateNotFound: as `confirm_email`.
        """

        def spend(conn: Connection) -> UserRecord | None:
            now = utcnow()
            usable = sa.or_(*(_usable(token_hash, purpose, now) for purpose in purposes))
            spent = conn.execute(
                identity_account_tokens.update()
                .where(usable)
                .values(spent_at=now)
                .returning(identity_account_tokens.c.user_id)
            ).first()
            if spent is None:
                return None
            _refuse_banned(conn, spent.user_id, now)
            conn.execute(
                identity_users.update()
                .where(identity_users.c.id == spent.user_id)
                .values(
                    updated_at=now,
                    email_confirmed_at=sa.func.coalesce(identity_users.c.email_confirmed_at, now),
                )
            )
            _spend_every_token(conn, user_id=spent.user_id, now=now)
            if auth_code is not None:
                _issue_auth_code(conn, auth_code, user_id=spent.user_id, now=now)
            row = conn.execute(
                sa.select(*_RECORD_COLUMNS).where(identity_users.c.id == spent.user_id)
            ).first()
            return None if row is None else _record(row)

        return await self._db.write(spend)

    async def spend_user_token(self, *, token_hash: str, purpose: str, user_id: str) -> bool:
        """Spend one usable token of `purpose` that belongs to `user_id` (a re-authentication
        nonce): one conditional UPDATE, so a nonce works once. False when there is none."""

        def spend(conn: Connection) -> bool:
            now = utcnow()
            spent = conn.execute(
                identity_account_tokens.update()
                .where(
                    _usable(token_hash, purpose, now),
                    identity_account_tokens.c.user_id == user_id,
                )
                .values(spent_at=now)
                .returning(identity_account_tokens.c.id)
            ).first()
            return spent is not None

        return await self._db.write(spend)

    async def account_token_usable(self, *, token_hash: str, purpose: str) -> bool:
        """Whether the token is known, of `purpose`, unspent and unexpired (a read: nothing is
        spent, so a refused password after it leaves the token usable)."""
        row = await self._db.read(
            lambda conn: conn.execute(
                sa.select(identity_account_tokens.c.id).where(
                    _usable(token_hash, purpose, utcnow())
                )
            ).first()
        )
        return row is not None

    async def reset_password(self, *, token_hash: str, password_hash: str) -> UserRecord | None:
        """Spend the reset token (one conditional UPDATE: of two racing resets one wins), set
        the password, confirm the address, end every session and spend every token of the
        user, in one transaction. None when the token is no longer usable."""

        def reset(conn: Connection) -> UserRecord | None:
            now = utcnow()
            spent = conn.execute(
                identity_account_tokens.update()
                .where(_usable(token_hash, RESET, now))
                .values(spent_at=now)
                .returning(identity_account_tokens.c.user_id)
            ).first()
            if spent is None:
                return None
            user_id = spent.user_id
            _refuse_banned(conn, user_id, now)
            conn.execute(
                identity_users.update()
                .where(identity_users.c.id == user_id)
                .values(
                    password_hash=password_hash,
                    updated_at=now,
                    # The link proved the mailbox.
                    email_confirmed_at=sa.func.coalesce(identity_users.c.email_confirmed_at, now),
                )
            )
            _revoke(conn, identity_sessions.c.user_id == user_id)
            _spend_for_new_password(conn, user_id=user_id, now=now)
            row = conn.execute(
                sa.select(*_RECORD_COLUMNS).where(identity_users.c.id == user_id)
            ).first()
            return None if row is None else _record(row)

        return await self._db.write(reset)

    async def delete_user(self, user_id: str) -> bool:
        """Delete the user for good, with its profile and items, in one transaction; its
        sessions and refresh tokens go with it (foreign keys cascade). False if there was none.

        GoTrue leaves an app's tables to their own foreign keys; `items` has none to the user (it
        must also run on Supabase, where users live in another schema), so the app's rows are
        deleted here rather than left behind without an owner.
        """

        def delete(conn: Connection) -> bool:
            deleted = conn.execute(
                identity_users.delete()
                .where(identity_users.c.id == user_id)
                .returning(identity_users.c.id)
            ).first()
            if deleted is None:
                return False
            conn.execute(items.delete().where(items.c.user_id == user_id))
            conn.execute(user_profile.delete().where(user_profile.c.id == user_id))
            return True

        return await self._db.write(delete)

    async def soft_delete_user(self, user_id: str) -> bool:
        """GoTrue's soft delete (`models.User.SoftDeleteUser`), in one transaction: the address
        replaced by an opaque value (`obfuscated`, so it is free for a new sign-up and matches no
        sign-in), no usable password, both metadata emptied, every account token spent and every
        session ended, `deleted_at` set. The row and its id stay (the app's own rows, profile and
        items, are left to the app, as GoTrue leaves them). Soft-deleting again changes nothing.
        False if there is no such user."""

        def soft_delete(conn: Connection) -> bool:
            user = conn.execute(
                sa.select(identity_users.c.email_as_typed, identity_users.c.deleted_at).where(
                    identity_users.c.id == user_id
                )
            ).first()
            if user is None:
                return False
            if user.deleted_at is not None:
                return True
            now = utcnow()
            hidden = obfuscated(user_id, user.email_as_typed)
            conn.execute(
                identity_users.update()
                .where(identity_users.c.id == user_id)
                .values(
                    email=hidden,
                    email_as_typed=hidden,
                    password_hash="",  # no argon2 hash: nothing verifies against it
                    user_metadata={},
                    app_metadata={},
                    deleted_at=now,
                    updated_at=now,
                )
            )
            conn.execute(
                identity_account_tokens.update()
                .where(
                    identity_account_tokens.c.user_id == user_id,
                    identity_account_tokens.c.spent_at.is_(None),
                )
                .values(spent_at=now)
            )
            _revoke(conn, identity_sessions.c.user_id == user_id)
            return True

        return await self._db.write(soft_delete)

    # PKCE flow states (GoTrue's `flow_state`).

    async def flow_state(self, *, auth_code_hash: str) -> FlowState | None:
        """The flow state whose auth code hashes to this, if any."""
        row = await self._db.read(
            lambda conn: conn.execute(
                sa.select(identity_flow_states).where(
                    identity_flow_states.c.auth_code_hash == auth_code_hash
                )
            ).first()
        )
        if row is None:
            return None
        return FlowState(
            id=row.id,
            user_id=row.user_id,
            challenge=CodeChallenge(value=row.code_challenge, method=row.code_challenge_method),
            authentication_method=row.authentication_method,
            created_at=_as_datetime(row.created_at),
            auth_code_issued_at=(
                None if row.auth_code_issued_at is None else _as_datetime(row.auth_code_issued_at)
            ),
        )

    async def take_flow_state(self, flow_id: str) -> UserRecord | None:
        """Delete the flow state (one conditional DELETE: of two racing exchanges of one code,
        one wins) and return its user. None when it is gone already (or its user is)."""

        def take(conn: Connection) -> UserRecord | None:
            taken = conn.execute(
                identity_flow_states.delete()
                .where(identity_flow_states.c.id == flow_id)
                .returning(identity_flow_states.c.user_id)
            ).first()
            if taken is None:
                return None
            row = conn.execute(
                sa.select(*_RECORD_COLUMNS).where(identity_users.c.id == taken.user_id)
            ).first()
            return None if row is None else _record(row)

        return await self._db.write(take)

    # Sessions and refresh tokens.

    async def open_session(
        self,
        user: UserRecord,
        *,
        refresh_token: str,
        lifetime: timedelta,
        user_changes: dict[str, Any],
        user_agent: str | None = None,
    ) -> Grant:
        """Start a session of `user` with its first refresh token, and stamp the user's
        `last_sign_in_at` (with `user_changes`, a rehashed password say) in the same transaction.
        `user_agent` is the opening request's, already bounded (`client_user_agent`)."""
        session_id = str(uuid.uuid4())
        now = utcnow()
        changes = {"last_sign_in_at": now, **user_changes}

        def start_session(conn: Connection) -> None:
            conn.execute(
                identity_users.update().where(identity_users.c.id == user.id).values(**changes)
            )
            conn.execute(
                identity_sessions.insert().values(
                    id=session_id,
                    user_id=user.id,
                    created_at=now,
                    not_after=now + lifetime,
                    user_agent=user_agent,
                )
            )
            _store_refresh_token(conn, refresh_token, session_id=session_id, now=now)

        await self._db.write(start_session)
        signed_in = replace(
            user, last_sign_in_at=now, updated_at=changes.get("updated_at", user.updated_at)
        )
        return Grant(signed_in, session_id, refresh_token, signed_in_at=now)

    async def rotate(
        self,
        refresh_token: str,
        *,
        presented_at: datetime,
        reuse_interval: timedelta,
        successor: Callable[[str], str],
    ) -> Grant | Reused:
        """One transaction: rotate the token to `successor(token)`; or, for a token already
        rotated, answer the current successor within `reuse_interval` of its rotation and revoke
        the whole session after it (committed with this transaction: the caller reports it).

        Raises:
            RefreshTokenInvalid: unknown token, or its session is over.
        """

        def rotate(conn: Connection) -> Grant | Reused:
            token_hash = hash_token(refresh_token)
            now = utcnow()
            rotated = conn.execute(_ROTATE, {"presented_hash": token_hash, "now": now}).first()
            if rotated is not None:
                owner = self._live_owner(conn, rotated.session_id, now)
                following = successor(refresh_token)
                _store_refresh_token(conn, following, session_id=rotated.session_id, now=now)
                return _grant(owner, rotated.session_id, following)

            spent = conn.execute(_SPENT, {"presented_hash": token_hash}).first()
            if spent is None:
                raise RefreshTokenInvalid()
            owner = self._live_owner(conn, spent.session_id, now)
            if presented_at - spent.revoked_at <= reuse_interval:
                current = _current_successor(conn, refresh_token, successor)
                return _grant(owner, spent.session_id, current)
            _revoke(conn, identity_sessions.c.id == spent.session_id)
            return Reused()

        return await self._db.write(rotate)

    async def session_of(self, refresh_token: str) -> tuple[str, str] | None:
        """The `(session id, user id)` a refresh token belongs to, live or not."""
        row = await self._db.read(
            lambda conn: conn.execute(
                sa.select(identity_sessions.c.id, identity_sessions.c.user_id)
                .select_from(identity_refresh_tokens.join(identity_sessions))
                .where(identity_refresh_tokens.c.token_hash == hash_token(refresh_token))
            ).first()
        )
        return None if row is None else (row.id, row.user_id)

    async def live_user(self, claims: AccessClaims) -> tuple[str, str, bool, bool] | None:
        """`(user id, email, whether it is confirmed, whether it is banned)` of the claims'
        session if it still lives (one point read: this is the check of every `/auth/me`)."""
        now = utcnow()
        values = {"user_id": claims.user_id, **self._session_values(claims.session_id, now)}
        row = await self._db.fetch_one(self._live_user, values)
        if row is None:
            return None
        return (row[0], row[1], row[2] is not None, _banned(row[3], now))

    async def revoke_sessions(
        self, *, user_id: str, session_id: str, scope: SignOutScope = SignOutScope.LOCAL
    ) -> None:
        """Revoke a session (`local`), the user's other sessions (`others`) or all of them
        (`global`), with every refresh token they have; idempotent."""
        if scope is SignOutScope.LOCAL:
            chosen = identity_sessions.c.id == session_id
        else:
            chosen = identity_sessions.c.user_id == user_id
            if scope is SignOutScope.OTHERS:
                chosen = sa.and_(chosen, identity_sessions.c.id != session_id)
        await self._db.write(lambda conn: _revoke(conn, chosen))

    async def live_sessions(self, user_id: str) -> list[LiveSession]:
        """The user's live sessions (not revoked, within both lifetimes), newest first."""
        now = utcnow()
        last_active = (
            sa.select(sa.func.max(identity_refresh_tokens.c.created_at))
            .where(identity_refresh_tokens.c.session_id == identity_sessions.c.id)
            .scalar_subquery()
        )
        query = sa.select(
            identity_sessions.c.id,
            identity_sessions.c.created_at,
            last_active.label("last_active_at"),
            identity_sessions.c.user_agent,
        ).where(
            identity_sessions.c.user_id == user_id,
            identity_sessions.c.revoked_at.is_(None),
            identity_sessions.c.not_after > now,
        )
        if self._idle_timeout is not None:
            query = query.where(last_active > now - self._idle_timeout)
        query = query.order_by(identity_sessions.c.created_at.desc(), identity_sessions.c.id)
        rows = await self._db.read(lambda conn: conn.execute(query).all())
        return [
            LiveSession(
                id=row.id,
                created_at=row.created_at,
                # SQLite gives an aggregate back as text, not through the column's type.
                last_active_at=_as_datetime(row.last_active_at),
                user_agent=row.user_agent,
            )
            for row in rows
        ]

    async def end_session(self, *, user_id: str, session_id: str) -> bool:
        """Revoke one live session of `user_id` with its refresh tokens; False when there is
        no such live session of that user (unknown, ended, or another user's: alike)."""
        live = {session.id for session in await self.live_sessions(user_id)}
        if session_id not in live:
            return False
        chosen = sa.and_(
            identity_sessions.c.id == session_id, identity_sessions.c.user_id == user_id
        )
        await self._db.write(lambda conn: _revoke(conn, chosen))
        return True

    def _session_values(self, session_id: str, now: datetime) -> dict[str, Any]:
        idle_since = now - self._idle_timeout if self._idle_timeout is not None else None
        return {"session_id": session_id, "now": now, "used_since": idle_since}

    def _live_owner(self, conn: Connection, session_id: str, now: datetime) -> Any:
        """The user row of a session that is still live, with `session_created_at`.

        Raises:
            RefreshTokenInvalid: the session is over.
            UserBanned: its user is banned. Raised inside the rotation's transaction, which it
                rolls back: the token is not spent, so the session works again once the ban
                is lifted (GoTrue checks the ban before it rotates).
        """
        row = conn.execute(self._session_owner, self._session_values(session_id, now)).first()
        if row is None:
            raise RefreshTokenInvalid()
        if _banned(row.banned_until, now):
            raise UserBanned()
        return row


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value  # type: ignore[no-any-return]


def _grant(owner: Any, session_id: str, refresh_token: str) -> Grant:
    return Grant(_record(owner), session_id, refresh_token, signed_in_at=owner.session_created_at)


def _store_refresh_token(conn: Connection, token: str, *, session_id: str, now: datetime) -> None:
    conn.execute(
        _STORE_TOKEN,
        {"token_hash": hash_token(token), "session_id": session_id, "created_at": now},
    )


def _current_successor(
    conn: Connection, refresh_token: str, successor: Callable[[str], str]
) -> str:
    """Follow the successors of a rotated token to the one not yet rotated."""
    token = refresh_token
    for _ in range(_MAX_SUCCESSOR_WALK):
        token = successor(token)
        revoked_at = conn.execute(
            sa.select(identity_refresh_tokens.c.revoked_at).where(
                identity_refresh_tokens.c.token_hash == hash_token(token)
            )
        ).first()
        if revoked_at is None:
            break
        if revoked_at[0] is None:
            return token
    raise RefreshTokenInvalid()


def _refuse_banned(conn: Connection, user_id: str, now: datetime) -> None:
    """Raise UserBanned for a banned user, inside a transaction that has just spent one of its
    account tokens: raising rolls it back, so the link stays as it was (GoTrue's `/verify`
    refuses a banned user before it spends anything)."""
    banned_until = conn.execute(
        sa.select(identity_users.c.banned_until).where(identity_users.c.id == user_id)
    ).scalar()
    if _banned(banned_until, now):
        raise UserBanned()


def _usable(token_hash: str, purpose: str, now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(
        identity_account_tokens.c.token_hash == token_hash,
        identity_account_tokens.c.purpose == purpose,
        identity_account_tokens.c.spent_at.is_(None),
        identity_account_tokens.c.expires_at > now,
    )


def _restart_email_change(conn: Connection, *, user_id: str) -> None:
    """Nothing of the user's email change is confirmed any more (GoTrue sets
    `email_change_confirm_status` to 0 with every new token): the marks of a first verify go."""
    conn.execute(
        identity_account_tokens.delete().where(
            identity_account_tokens.c.user_id == user_id,
            identity_account_tokens.c.purpose == EMAIL_CHANGE_CONFIRMED,
        )
    )


# The PKCE flow states of the sign-in links (GoTrue's `authentication_method` names).
_SIGN_IN_FLOWS = ("recovery", "magiclink")
# No user has the nil UUID (ids are uuid4): the decoy UPDATE of an unknown address matches no row.
_NO_USER = "00000000-0000-0000-0000-000000000000"


def _insert_tokens(
    conn: Connection,
    hashes: list[str | None],
    *,
    purpose: str,
    user_id: str,
    now: datetime,
    expires_at: datetime,
    **values: Any,
) -> None:
    for token_hash in filter(None, hashes):
        # A code's hash can repeat (one in a million per mail): only this user's own earlier
        # code has it (the address is in the hash), spent just above or long ago.
        conn.execute(
            identity_account_tokens.delete().where(
                identity_account_tokens.c.token_hash == token_hash
            )
        )
        conn.execute(
            identity_account_tokens.insert().values(
                token_hash=token_hash,
                purpose=purpose,
                user_id=user_id,
                created_at=now,
                expires_at=expires_at,
                **values,
            )
        )


def _issue_auth_code(conn: Connection, code: NewAuthCode, *, user_id: str, now: datetime) -> None:
    """Give the user's newest flow state of the code's kind the code (GoTrue `issueAuthCode`),
    replacing one issued before. Raises FlowStateNotFound (rolling the transaction back) when
    the user has none."""
    newest = (
        sa.select(identity_flow_states.c.id)
        .where(
            identity_flow_states.c.user_id == user_id,
            identity_flow_states.c.authentication_method == code.authentication_method,
        )
        .order_by(identity_flow_states.c.created_at.desc(), identity_flow_states.c.id)
        .limit(1)
        .scalar_subquery()
    )
    issued = conn.execute(
        identity_flow_states.update()
        .where(identity_flow_states.c.id == newest)
        .values(auth_code_hash=code.auth_code_hash, auth_code_issued_at=now)
        .returning(identity_flow_states.c.id)
    ).first()
    if issued is None:
        raise FlowStateNotFound()


def _insert_flow_state(
    conn: Connection, flow: NewFlowState, *, user_id: str, now: datetime
) -> None:
    # The new mail spent the older links of its kind, so their flow states can never get a
    # code again (an issued one dies with them): gone, rather than left to pile up.
    conn.execute(
        identity_flow_states.delete().where(
            identity_flow_states.c.user_id == user_id,
            identity_flow_states.c.authentication_method == flow.authentication_method,
        )
    )
    conn.execute(
        identity_flow_states.insert().values(
            id=str(uuid.uuid4()),
            user_id=user_id,
            authentication_method=flow.authentication_method,
            code_challenge=flow.challenge.value,
            code_challenge_method=flow.challenge.method,
            created_at=now,
        )
    )


def _spend_tokens(conn: Connection, *, user_id: str, purpose: str, now: datetime) -> None:
    conn.execute(
        identity_account_tokens.update()
        .where(
            identity_account_tokens.c.user_id == user_id,
            identity_account_tokens.c.purpose == purpose,
            identity_account_tokens.c.spent_at.is_(None),
        )
        .values(spent_at=now)
    )


def _spend_every_token(conn: Connection, *, user_id: str, now: datetime) -> None:
    """Spend every outstanding token of the user, of every kind, as GoTrue's `UpdatePassword`,
    `Confirm`, `Recover` and `ConfirmEmailChange` clear them all (`ClearAllOneTimeTokensForUser`):
    a link mailed before a new password, or to an address the account has left, must not undo it
    (an intruder's pending email change outliving the owner's new password is a takeover)."""
    conn.execute(
        identity_account_tokens.update()
        .where(
            identity_account_tokens.c.user_id == user_id,
            identity_account_tokens.c.spent_at.is_(None),
        )
        .values(spent_at=now)
    )


def _spend_for_new_password(conn: Connection, *, user_id: str, now: datetime) -> None:
    """A new password spends every outstanding token, and ends the auth codes already issued
    from a sign-in link (recovery, magic link): GoTrue keeps those flow states, so a code
    followed before the change would still open a session after it, the attacker's that the
    change meant to end."""
    _spend_every_token(conn, user_id=user_id, now=now)
    conn.execute(
        identity_flow_states.delete().where(
            identity_flow_states.c.user_id == user_id,
            identity_flow_states.c.authentication_method.in_(_SIGN_IN_FLOWS),
        )
    )


def issue_account_token_in(
    conn: Connection,
    *,
    email_key: str,
    purpose: str,
    token_hash: str,
    expires_at: datetime,
    only_unconfirmed: bool = False,
    code_hash: str | None = None,
    flow: NewFlowState | None = None,
) -> str | None:
    """`IdentityStore.issue_account_token` in the caller's transaction (the mail sender's,
    resolving a mail request; see `mail.outbox.resolve_next`), with no decoy work for an
    unknown address (no request waits on it): the user's stored address, or None, and nothing
    written, when there is no such user (`only_unconfirmed`: or it is confirmed)."""
    chosen = identity_users.c.email == email_key
    if only_unconfirmed:
        chosen = sa.and_(chosen, identity_users.c.email_confirmed_at.is_(None))
    user = conn.execute(
        sa.select(identity_users.c.id, identity_users.c.email_as_typed).where(chosen)
    ).first()
    if user is None:
        return None
    now = utcnow()
    _spend_tokens(conn, user_id=user.id, purpose=purpose, now=now)
    _insert_tokens(
        conn,
        [token_hash, code_hash],
        purpose=purpose,
        user_id=user.id,
        now=now,
        expires_at=expires_at,
    )
    if flow is not None:
        _insert_flow_state(conn, flow, user_id=user.id, now=now)
    return str(user.email_as_typed)


def pending_email_change_in(conn: Connection, *, email_key: str) -> tuple[str, str] | None:
    """The user with this address and the new address (as typed) of its newest usable
    email-change token (of any kind: GoTrue's secure change has two, one side perhaps confirmed
    already), or None when nothing is pending (in the caller's transaction)."""
    row = conn.execute(
        sa.select(identity_users.c.id, identity_account_tokens.c.new_email_as_typed)
        .join(
            identity_account_tokens,
            identity_account_tokens.c.user_id == identity_users.c.id,
        )
        .where(
            identity_users.c.email == email_key,
            identity_account_tokens.c.purpose.in_(EMAIL_CHANGES),
            identity_account_tokens.c.spent_at.is_(None),
            identity_account_tokens.c.expires_at > utcnow(),
            identity_account_tokens.c.new_email_as_typed.is_not(None),
        )
        .order_by(identity_account_tokens.c.id.desc())
        .limit(1)
    ).first()
    return None if row is None else (str(row.id), str(row.new_email_as_typed))


def issue_email_change_in(
    conn: Connection,
    *,
    user_id: str,
    new_email: str,
    new_email_as_typed: str,
    token_hash: str,
    expires_at: datetime,
    code_hash: str | None = None,
    purpose: str = EMAIL_CHANGE,
    current_token_hash: str | None = None,
    current_code: str | None = None,
    replaces: tuple[str, ...] = EMAIL_CHANGES,
    flow: NewFlowState | None = None,
) -> str | None:
    """`IdentityStore.issue_email_change` in the caller's transaction: spend the user's older
    email-change tokens, store a new one carrying the new address (and `flow`, a PKCE flow
    state: one for the change, whichever token's verify applies it issues its code, as
    GoTrue's `issueAuthCode` after `emailChangeVerify`). The user's current stored address,
    or None, and nothing stored, when the new address is taken or the user gone.

    GoTrue's secure email change: `purpose` EMAIL_CHANGE_NEW, and `current_token_hash` (with
    `current_code`, hashed here with the stored address) the token mailed to the current
    address (EMAIL_CHANGE_CURRENT). `replaces`: the kinds the new tokens replace (GoTrue's
    `generate_link` replaces one side's token and keeps the other's, pointed at the new
    address). Either way nothing is half confirmed any more."""
    now = utcnow()
    taken = conn.execute(
        sa.select(identity_users.c.id).where(identity_users.c.email == new_email)
    ).first()
    user = conn.execute(
        sa.select(identity_users.c.email, identity_users.c.email_as_typed).where(
            identity_users.c.id == user_id
        )
    ).first()
    if taken is not None or user is None:
        return None
    for replaced in replaces:
        _spend_tokens(conn, user_id=user_id, purpose=replaced, now=now)
    _restart_email_change(conn, user_id=user_id)
    conn.execute(  # what is left of the pending change now changes to this address
        identity_account_tokens.update()
        .where(
            identity_account_tokens.c.user_id == user_id,
            identity_account_tokens.c.purpose.in_(EMAIL_CHANGES),
            identity_account_tokens.c.spent_at.is_(None),
        )
        .values(new_email=new_email, new_email_as_typed=new_email_as_typed)
    )
    issued = [(purpose, [token_hash, code_hash])]
    if current_token_hash is not None:
        current = _code_hash(user.email, current_code) if current_code else None
        issued.append((EMAIL_CHANGE_CURRENT, [current_token_hash, current]))
    for kind, hashes in issued:
        _insert_tokens(
            conn,
            hashes,
            purpose=kind,
            user_id=user_id,
            now=now,
            expires_at=expires_at,
            new_email=new_email,
            new_email_as_typed=new_email_as_typed,
        )
    if flow is not None:
        _insert_flow_state(conn, flow, user_id=user_id, now=now)
    return str(user.email_as_typed)


def _revoke(conn: Connection, chosen: sa.ColumnElement[bool]) -> None:
    """Revoke the chosen live sessions and every live refresh token they have."""
    now = utcnow()
    sessions = (
        conn.execute(
            identity_sessions.update()
            .where(chosen, identity_sessions.c.revoked_at.is_(None))
            .values(revoked_at=now)
            .returning(identity_sessions.c.id)
        )
        .scalars()
        .all()
    )
    if sessions:
        conn.execute(
            identity_refresh_tokens.update()
            .where(
                identity_refresh_tokens.c.session_id.in_(sessions),
                identity_refresh_tokens.c.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
