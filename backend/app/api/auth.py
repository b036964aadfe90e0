"""The /auth routes: the hybrid token model.

The access token travels in JSON bodies and the `Authorization` header, and the browser keeps it in
memory. The refresh token travels only in the HttpOnly `sb_refresh_token` cookie, which scripts
cannot read, so an XSS bug cannot carry a long-lived credential away.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status

from backend.app.api.deps import (
    ClientAddress,
    CsrfDep,
    CurrentUser,
    RefreshCookie,
    ServicesDep,
    SessionsDep,
    UserAgent,
    UserScopedDep,
)
from backend.app.api.errors import error_response
from backend.app.api.models import (
    ConfirmedOut,
    ConfirmedUserOut,
    CsrfOut,
    EmailChangeIn,
    EmailIn,
    LiveSessionOut,
    LogoutIn,
    MeOut,
    MeUserOut,
    OkOut,
    PasswordChangeIn,
    PasswordResetIn,
    ProfileOut,
    SessionListOut,
    SessionOut,
    SignInIn,
    SignUpIn,
    SignUpOut,
    TokenIn,
    UserOut,
)
from backend.app.core.errors import RefreshTokenError, RefreshTokenMissing
from backend.app.identity.base import AuthSession, SignOutScope

__all__ = ["router"]

router = APIRouter(prefix="/auth", tags=["auth"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "`unauthorized` / `auth_invalid_credentials` / `refresh_token_*`"},
    403: {
        "description": "`csrf_*` / `origin_not_allowed` / `email_not_confirmed` (sign-in) / "
        "`user_banned` (sign-in after the password check, refresh, lifecycle links)"
    },
    422: {"description": "`validation_error` / `weak_password`"},
    429: {"description": "`rate_limited`, with `Retry-After`"},
}
# A bearer route of a user an admin banned (GoTrue's `ban_duration`): refused at once.
_BANNED: dict[str, Any] = {"description": "`user_banned`: an admin banned this user"}


def _session_body(session: AuthSession, csrf_token: str) -> SessionOut:
    return SessionOut(
        access_token=session.access_token.token,
        expires_in=session.access_token.expires_in,
        expires_at=session.access_token.expires_at,
        csrf_token=csrf_token,
        user=UserOut(id=session.user.id, email=session.user.email),
    )


@router.get("/csrf", response_model=CsrfOut)
async def get_csrf_token(request: Request, response: Response, services: ServicesDep) -> CsrfOut:
    """A CSRF token for the state-changing /auth routes; sets its HttpOnly counterpart cookie."""
    services.csrf.check_origin(request)
    return CsrfOut(csrf_token=services.csrf.current_or_new_token(request, response))


@router.post(
    "/signup",
    status_code=status.HTTP_201_CREATED,
    response_model=SignUpOut,
    responses={409: {"description": "`user_already_exists`"}, **_ERRORS},
)
async def sign_up(
    body: SignUpIn, _csrf: CsrfDep, sessions: SessionsDep, address: ClientAddress
) -> SignUpOut:
    """Create an account and its profile. Does not sign in."""
    user = await sessions.sign_up(
        email=str(body.email),
        password=body.password,
        display_name=body.profile.display_name if body.profile else None,
        address=address,
    )
    return SignUpOut(user=UserOut(id=user.id, email=user.email))


@router.post("/signin", response_model=SessionOut, responses=_ERRORS)
async def sign_in(
    body: SignInIn,
    response: Response,
    _csrf: CsrfDep,
    services: ServicesDep,
    sessions: SessionsDep,
    address: ClientAddress,
    user_agent: UserAgent,
) -> SessionOut:
    """Sign in with email and password: the access token in the body, the refresh token in the
    `sb_refresh_token` cookie, and a fresh CSRF token (rotated at every sign-in)."""
    session = await sessions.sign_in(
        email=str(body.email), password=body.password, address=address, user_agent=user_agent
    )
    services.cookies.set_refresh_token(response, session.refresh_token)
    # A new CSRF nonce, and a token bound to the new session: a pair planted before sign-in
    # stops working here.
    return _session_body(
        session, services.csrf.issue(response, refresh_token=session.refresh_token)
    )


@router.post("/refresh", response_model=SessionOut, responses=_ERRORS)
async def refresh(
    request: Request,
    response: Response,
    _csrf: CsrfDep,
    refresh_token: RefreshCookie,
    services: ServicesDep,
    sessions: SessionsDep,
    address: ClientAddress,
) -> SessionOut | Response:
    """Rotate the refresh cookie and return a new access token: the SPA's boot call after a page
    reload. Works after the access token has expired."""
    try:
        if refresh_token is None:
            raise RefreshTokenMissing()
        session = await sessions.refresh(refresh_token=refresh_token, address=address)
    except RefreshTokenError as exc:
        # A dead refresh token is removed from the browser so it stops being sent. Other errors
        # (503 provider_unavailable, 429) keep it: the session may be fine in a moment.
        failure = error_response(exc)
        services.cookies.clear_refresh_token(failure)
        return failure
    services.cookies.set_refresh_token(response, session.refresh_token)
    # The CSRF cookie's binding follows the new refresh cookie; the token stays (CsrfProtector).
    token = services.csrf.follow_refresh(request, response, session.refresh_token)
    return _session_body(session, token)


@router.post("/logout", response_model=OkOut, responses=_ERRORS)
async def logout(
    request: Request,
    response: Response,
    _csrf: CsrfDep,
    refresh_token: RefreshCookie,
    services: ServicesDep,
    sessions: SessionsDep,
    body: LogoutIn | None = None,
) -> OkOut:
    """Revoke the session server-side and clear the refresh cookie; with `scope: "others"` end
    the user's other sessions and keep this one (and its cookie); `global` ends them all."""
    scope = SignOutScope(body.scope if body else "local")
    successor = None
    if refresh_token is not None:
        successor = await sessions.sign_out(refresh_token=refresh_token, scope=scope)
    if scope is not SignOutScope.OTHERS:
        services.cookies.clear_refresh_token(response)
    elif successor is not None:
        # The provider rotated the token to sign out: this session lives on with the successor.
        services.cookies.set_refresh_token(response, successor)
        services.csrf.follow_refresh(request, response, successor)
    return OkOut()


@router.post(
    "/password/forgot",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OkOut,
    responses={
        403: _ERRORS[403],
        422: {"description": "`validation_error`"},
        429: _ERRORS[429],
        501: {"description": "`not_supported` (supabase provider)"},
    },
)
async def forgot_password(
    body: EmailIn, _csrf: CsrfDep, sessions: SessionsDep, address: ClientAddress
) -> OkOut:
    """Mail a reset link if the address has an account: the same 202 either way, answered
    before any SMTP work (the mail waits in the outbox)."""
    await sessions.request_password_reset(email=str(body.email), address=address)
    return OkOut()


@router.post(
    "/email/verify",
    response_model=ConfirmedOut,
    responses={
        400: {"description": "`token_invalid`: unknown, spent, expired or of another kind"},
        403: _ERRORS[403],
        409: {"description": "`user_already_exists`: the new address was taken meanwhile"},
        422: {"description": "`validation_error`"},
        501: {"description": "`not_supported` (supabase provider)"},
    },
)
async def verify_email(body: TokenIn, _csrf: CsrfDep, sessions: SessionsDep) -> ConfirmedOut:
    """Confirm a sign-up's address, or apply an email change, with the link's token."""
    user = await sessions.verify_email(token=body.token)
    return ConfirmedOut(user=ConfirmedUserOut(id=user.id, email=user.email, email_confirmed=True))


@router.post(
    "/email/resend",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OkOut,
    responses={
        403: _ERRORS[403],
        422: {"description": "`validation_error`"},
        429: _ERRORS[429],
        501: {"description": "`not_supported` (supabase provider)"},
    },
)
async def resend_confirmation(
    body: EmailIn, _csrf: CsrfDep, sessions: SessionsDep, address: ClientAddress
) -> OkOut:
    """Mail a new confirmation link if the address has an unconfirmed sign-up: the same 202
    for any address, answered before any SMTP work."""
    await sessions.resend_confirmation(email=str(body.email), address=address)
    return OkOut()


@router.post(
    "/email",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OkOut,
    responses={
        401: _ERRORS[401],
        403: {"description": "`invalid_current_password` / `user_banned`"},
        409: {"description": "`user_already_exists`"},
        422: {"description": "`validation_error`"},
        429: _ERRORS[429],
        501: {"description": "`not_supported` (supabase provider)"},
    },
)
async def change_email(
    body: EmailChangeIn, claims: CurrentUser, sessions: SessionsDep, address: ClientAddress
) -> OkOut:
    """Ask to change the address: a link to the new one, a notice to the old one; nothing
    changes until the link is used (`POST /auth/email/verify`)."""
    await sessions.request_email_change(
        claims=claims,
        new_email=str(body.new_email),
        current_password=body.current_password,
        address=address,
    )
    return OkOut()


@router.post(
    "/password/reset",
    response_model=SessionOut,
    responses={
        400: {"description": "`token_invalid`: unknown, spent, expired or of another kind"},
        403: _ERRORS[403],
        422: _ERRORS[422],
        501: {"description": "`not_supported` (supabase provider)"},
    },
)
async def reset_password(
    body: PasswordResetIn,
    response: Response,
    _csrf: CsrfDep,
    services: ServicesDep,
    sessions: SessionsDep,
    user_agent: UserAgent,
) -> SessionOut:
    """Choose a new password with the link's token: signs in (the sign-in body and cookie) and
    ends every other session of the user."""
    session = await sessions.reset_password(
        token=body.token, password=body.password, user_agent=user_agent
    )
    services.cookies.set_refresh_token(response, session.refresh_token)
    return _session_body(
        session, services.csrf.issue(response, refresh_token=session.refresh_token)
    )


@router.post(
    "/password",
    response_model=OkOut,
    responses={
        401: _ERRORS[401],
        403: {"description": "`invalid_current_password` / `user_banned`"},
        422: {"description": "`validation_error` / `weak_password` (reason `same_password` too)"},
        429: _ERRORS[429],
        501: {"description": "`not_supported` (supabase provider)"},
    },
)
async def change_password(
    body: PasswordChangeIn, claims: CurrentUser, sessions: SessionsDep, address: ClientAddress
) -> OkOut:
    """Change the password with the current one: every other session ends, this one stays."""
    await sessions.change_password(
        claims=claims,
        current_password=body.current_password,
        new_password=body.new_password,
        address=address,
    )
    return OkOut()


@router.get(
    "/sessions",
    response_model=SessionListOut,
    responses={
        401: _ERRORS[401],
        403: _BANNED,
        501: {"description": "`not_supported` (supabase provider)"},
    },
)
async def list_sessions(claims: CurrentUser, sessions: SessionsDep) -> SessionListOut:
    """The caller's live sessions, newest first; `current` marks the one of this access token."""
    live = await sessions.list_sessions(claims=claims)
    return SessionListOut(
        sessions=[
            LiveSessionOut(
                id=session.id,
                created_at=session.created_at,
                last_active_at=session.last_active_at,
                user_agent=session.user_agent,
                current=session.id == claims.session_id,
            )
            for session in live
        ]
    )


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        401: _ERRORS[401],
        403: _BANNED,
        404: {"description": "`not_found`: unknown, ended, or another user's"},
        501: {"description": "`not_supported` (supabase provider)"},
    },
)
async def end_session(session_id: str, claims: CurrentUser, sessions: SessionsDep) -> Response:
    """End one of the caller's sessions: its refresh stops at once and `/auth/me` refuses its
    access tokens at once. Needs no CSRF token: no browser attaches a bearer header by itself."""
    await sessions.end_session(claims=claims, session_id=session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", response_model=MeOut, responses={401: _ERRORS[401], 403: _BANNED})
async def me(scoped: UserScopedDep, services: ServicesDep) -> MeOut:
    """The signed-in user and profile. The provider is asked for the user, so a signed-out
    session or a deleted user is refused at once; the profile is read through the user-scoped
    client."""
    # The caller's claims come with the user-scoped client: a dependency fewer to resolve.
    user = await services.identity.get_user(scoped.claims)
    profile = await scoped.get_profile()
    return MeOut(
        user=MeUserOut(
            id=user.id,
            email=user.email,
            email_confirmed=user.email_confirmed,
            profile=ProfileOut(display_name=profile["display_name"] if profile else None),
        )
    )
