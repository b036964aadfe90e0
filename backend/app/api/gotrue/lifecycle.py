"""GoTrue's lifecycle routes under `/auth/v1`: recovery, verification and resend.

They go through the session service and the embedded provider's one store and one outbox, as
`/auth`'s lifecycle routes do: the same tokens (stored only as SHA-256, single use, expiring),
the same mail limits, the same mailer. What differs is GoTrue's: the bodies, the statuses, the
error codes, and the mails' links (`links.py`). Sources: GT `internal/api/recover.go`,
`verify.go`, `resend.go` (docs/gotrue-api.md §8).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from backend.app.api.deps import ClientAddress, SessionsDep
from backend.app.core.request_limits import client_user_agent
from backend.app.db.tables import utcnow
from backend.app.identity.embedded import (
    PKCE_PREFIX,
    VERIFY_TYPES,
    AuthCode,
    EmailChangePending,
    EmailUnconfirmed,
    FlowStateNotFound,
    GoTrueSession,
    LinkRefused,
    SignUpsNotAllowed,
    VerifyLinks,
)

from .callers import Admin, ApiKey, Config, GoTrueDep, SignedIn
from .errors import (
    GoTrueCode,
    GoTrueError,
    code_invalid,
    email_exists,
    email_rate_limited,
    link_invalid,
    translate_app_errors,
    validation_failed,
)
from .links import allowed_redirect, verify_links
from .schemas import (
    GenerateLinkBody,
    InviteBody,
    OtpBody,
    RecoverBody,
    ResendBody,
    VerifyBody,
    checked_email,
    code_challenge,
    openapi_body,
    read_body,
    session_fields,
    session_json,
    user_json,
)

__all__ = ["router"]

router = APIRouter(tags=["gotrue"])

# GoTrue's `oauthErrorMap`: the `error` of a redirect, by status.
_OAUTH_ERRORS = {
    400: "invalid_request",
    401: "unauthorized_client",
    403: "access_denied",
    500: "server_error",
    503: "temporarily_unavailable",
}
_RESEND_TYPES = frozenset({"signup", "email_change", "sms", "phone_change"})
# GoTrue's `singleConfirmationAccepted` (`verify.go`): the first of a secure email change's two.
_EMAIL_CHANGE_HALF_DONE = (
    "Confirmation link accepted. Please proceed to confirm link sent to the other email"
)


def _email_of(value: str | None) -> str:
    return checked_email(value)


@router.post("/recover", openapi_extra=openapi_body(RecoverBody))
async def recover(
    request: Request, _key: ApiKey, sessions: SessionsDep, address: ClientAddress, config: Config
) -> dict[str, Any]:
    """GoTrue `recover.go`: 200 `{}` for a known and an unknown address alike; the known one
    is mailed a recovery link to `/verify` (and its code); a PKCE one with `code_challenge`."""
    body = await read_body(request, RecoverBody)
    if not body.email:
        raise validation_failed("Password recovery requires an email")
    email = _email_of(body.email)
    challenge = code_challenge(body)
    with translate_app_errors(rate_limited=email_rate_limited):
        await sessions.gotrue_recover(
            email=email,
            address=address,
            links=verify_links(request, config),
            challenge=challenge,
        )
    return {}


@router.post("/otp", openapi_extra=openapi_body(OtpBody))
async def otp(
    request: Request, _key: ApiKey, sessions: SessionsDep, address: ClientAddress, config: Config
) -> dict[str, Any]:
    """GoTrue `otp.go` and `magic_link.go` for an email: 200 `{}`; a magic link and its code
    to a confirmed user, a sign-up (and its confirmation, autoconfirm off) for a new address.
    `create_user: false` for an unknown address is GoTrue's 422 `otp_disabled`."""
    body = await read_body(request, OtpBody)
    if body.email and body.phone:
        raise validation_failed("Only an email address or phone number should be provided")
    if body.email and body.channel:
        raise validation_failed("Channel should only be specified with Phone OTP")
    challenge = code_challenge(body)
    if not body.email:
        if not body.phone:
            raise validation_failed("One of email or phone must be set")
        if not body.create_user:  # no user has a phone number here
            raise _otp_disabled()
        raise GoTrueError(400, GoTrueCode.PHONE_PROVIDER_DISABLED, "Unsupported phone provider")
    email = _email_of(body.email)
    try:
        with translate_app_errors(rate_limited=email_rate_limited):
            await sessions.gotrue_magic_link(
                email=email,
                create_user=body.create_user,
                user_metadata=body.data or {},
                address=address,
                links=verify_links(request, config),
                signup_disabled=config.gotrue_disable_signup,
                challenge=challenge,
            )
    except SignUpsNotAllowed as exc:
        if exc.for_otp:
            raise _otp_disabled() from None
        raise GoTrueError(
            422, GoTrueCode.SIGNUP_DISABLED, "Signups not allowed for this instance"
        ) from None
    return {}


def _otp_disabled() -> GoTrueError:
    return GoTrueError(422, GoTrueCode.OTP_DISABLED, "Signups not allowed for otp")


@router.get("/reauthenticate")
async def reauthenticate(
    caller: SignedIn, sessions: SessionsDep, address: ClientAddress
) -> dict[str, Any]:
    """GoTrue `reauthenticate.go`: 200 `{}`; mails the caller the nonce that `PUT /user` asks
    for with GOTRUE_SECURITY_UPDATE_PASSWORD_REQUIRE_REAUTHENTICATION."""
    try:
        with translate_app_errors(rate_limited=email_rate_limited):
            await sessions.gotrue_reauthenticate(claims=caller.claims, address=address)
    except EmailUnconfirmed:
        raise GoTrueError(
            422, GoTrueCode.EMAIL_NOT_CONFIRMED, "Please verify your email first."
        ) from None
    return {}


@router.post("/resend", openapi_extra=openapi_body(ResendBody))
async def resend(
    request: Request, _key: ApiKey, sessions: SessionsDep, address: ClientAddress, config: Config
) -> dict[str, Any]:
    """GoTrue `resend.go`: 200 `{}`; a new confirmation mail only to an unconfirmed sign-up.
    `code_challenge` is read for `signup` and `email_change` only, as GoTrue's."""
    body = await read_body(request, ResendBody)
    kind = body.type or ""
    if kind not in _RESEND_TYPES:
        raise validation_failed(
            "Missing one of these types: signup, email_change, sms, phone_change"
        )
    challenge = code_challenge(body) if kind in ("signup", "email_change") else None
    if not body.email and kind == "signup":
        raise validation_failed("Type provided requires an email address")
    if not body.phone and kind == "sms":
        raise validation_failed("Type provided requires a phone number")
    if body.email and body.phone:
        raise validation_failed("Only an email address or phone number should be provided.")
    if body.phone:
        raise GoTrueError(400, GoTrueCode.PHONE_PROVIDER_DISABLED, "Phone logins are disabled")
    if not body.email:
        raise validation_failed("Missing email address or phone number")
    email = _email_of(body.email)
    links = verify_links(request, config)
    with translate_app_errors(rate_limited=email_rate_limited):
        if kind == "signup":
            await sessions.gotrue_resend_confirmation(
                email=email, address=address, links=links, challenge=challenge
            )
        elif kind == "email_change":
            await sessions.gotrue_resend_email_change(
                email=email, address=address, links=links, challenge=challenge
            )
    return {}


@router.post("/verify", openapi_extra=openapi_body(VerifyBody))
async def verify_post(
    request: Request, _key: ApiKey, sessions: SessionsDep, address: ClientAddress
) -> dict[str, Any]:
    """GoTrue `verify.go` `verifyPost`: `{type, token_hash}` or `{type, token, email}` -> 200 a
    session, as `/token` answers."""
    body = await read_body(request, VerifyBody)
    if not body.type:
        raise validation_failed("Verify requires a verification type")
    if bool(body.token) == bool(body.token_hash):
        raise validation_failed("Verify requires either a token or a token hash")
    answer = await _verify_post(request, body, body.type, sessions, address)
    if isinstance(answer, EmailChangePending):
        # GoTrue's own body, `code` a string: supabase-py reads "200" as "one more to go".
        return {"msg": _EMAIL_CHANGE_HALF_DONE, "code": "200"}
    return session_json(answer.session, answer.user)


async def _verify_post(
    request: Request, body: VerifyBody, kind: str, sessions: SessionsDep, address: str
) -> GoTrueSession | EmailChangePending:
    user_agent = client_user_agent(request)
    if body.token_hash:
        if body.email or body.phone or body.redirect_to:
            raise validation_failed("Only the token_hash and type should be provided")
        if kind not in VERIFY_TYPES:
            raise validation_failed("Invalid email verification type")
        with translate_app_errors(token_invalid=link_invalid):
            return await sessions.gotrue_verify(
                kind=kind, token_hash=body.token_hash, address=address, user_agent=user_agent
            )
    if body.phone and not body.email:
        raise code_invalid()  # no phone number has a user here
    if not body.email or body.phone:
        raise validation_failed(
            "Only an email address or phone number should be provided on verify"
        )
    try:
        email = checked_email(body.email)
    except GoTrueError:
        raise validation_failed("Invalid email format", status=422) from None
    if kind not in VERIFY_TYPES:
        raise code_invalid()
    with translate_app_errors(token_invalid=code_invalid):
        return await sessions.gotrue_verify(
            kind=kind,
            token=body.token,
            email=email,
            address=address,
            user_agent=user_agent,
        )


def _with_fragment(url: str, fields: dict[str, Any]) -> str:
    """GoTrue's redirects: the fields sorted by name (Go's `url.Values.Encode`) in the fragment,
    with `sb` (Supabase Auth's mark), replacing any fragment the URL had."""
    parts = urlsplit(url)
    fragment = urlencode(sorted({**fields, "sb": ""}.items()))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, fragment))


def _with_query(url: str, fields: dict[str, str]) -> str:
    """GoTrue's PKCE redirects (`prepPKCERedirectURL`): the fields set in the URL's query (a
    parameter of the same name replaced), all sorted by name; the fragment kept."""
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in fields]
    query = urlencode(sorted([*kept, *fields.items()]))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


@router.get("/verify", response_class=RedirectResponse, status_code=303)
async def verify_get(
    request: Request, sessions: SessionsDep, address: ClientAddress, config: Config
) -> RedirectResponse:
    """GoTrue `verify.go` `verifyGet`, a mail's link (no `apikey`: the gateway leaves `/verify`
    open): 303 to `redirect_to` (if allowed, else SITE_URL) with the session in the fragment,
    or the error there (`error`, `error_code`, `error_description`). A PKCE link (`pkce_`
    token): `?code=<auth code>` in the query instead, and an error in the query too."""
    token = request.query_params.get("token", "")
    kind = request.query_params.get("type", "")
    if not kind:
        raise validation_failed("Verify requires a verification type")
    if not token:
        raise validation_failed("Verify requires a token or a token hash")
    target = allowed_redirect(request.query_params.get("redirect_to"), config)
    pkce = token.startswith(PKCE_PREFIX)
    try:
        if kind not in VERIFY_TYPES:
            raise validation_failed("Invalid email verification type")
        with translate_app_errors(token_invalid=link_invalid):
            answer: GoTrueSession | AuthCode | EmailChangePending
            if pkce:
                answer = await sessions.gotrue_verify_for_code(
                    kind=kind, token_hash=token, address=address
                )
            else:
                answer = await sessions.gotrue_verify(
                    kind=kind,
                    token_hash=token,
                    address=address,
                    user_agent=client_user_agent(request),
                )
    except FlowStateNotFound as exc:
        return RedirectResponse(
            _error_redirect(target, 400, GoTrueCode.FLOW_STATE_NOT_FOUND, exc.message, pkce),
            status_code=303,
        )
    except GoTrueError as exc:
        if exc.status == 429 or exc.status >= 500:
            raise  # GoTrue's limiter answers before the handler; an outage is no verdict
        return RedirectResponse(
            _error_redirect(target, exc.status, exc.code, exc.message, pkce), status_code=303
        )
    if isinstance(answer, EmailChangePending):  # GoTrue's `prepRedirectURL`
        message = {"message": _EMAIL_CHANGE_HALF_DONE}
        # A PKCE link's message is in the query too (where a server-side callback reads it).
        half_done = _with_query(target, message) if pkce else target
        return RedirectResponse(_with_fragment(half_done, message), status_code=303)
    if isinstance(answer, AuthCode):
        return RedirectResponse(_with_query(target, {"code": answer.code}), status_code=303)
    fields = {**session_fields(answer.session), "type": kind}
    return RedirectResponse(_with_fragment(target, fields), status_code=303)


def _error_redirect(target: str, status: int, code: GoTrueCode, message: str, pkce: bool) -> str:
    """GoTrue `prepErrorRedirectURL`: the error in the fragment and, for a PKCE link, in the
    query too (where a server-side callback reads it)."""
    error = {"error_code": code.value, "error_description": message}
    if status in _OAUTH_ERRORS:
        error["error"] = _OAUTH_ERRORS[status]
    return _with_fragment(_with_query(target, error) if pkce else target, error)


def _link_refused(exc: LinkRefused, kind: str) -> GoTrueError:
    match exc.reason:
        case "email_exists":
            return email_exists()
        case "user_not_found":
            return GoTrueError(404, GoTrueCode.USER_NOT_FOUND, "User with this email not found")
        case "password_required":
            return validation_failed("Signup requires a valid password")
        case "new_email_required":
            return validation_failed("An email address is required")
        case "secure_email_change_off":
            return validation_failed(
                "Enable secure email change to generate link for current email"
            )
    return validation_failed(f"Invalid email action link type requested: {kind}")


@router.post("/invite", openapi_extra=openapi_body(InviteBody))
async def invite(
    request: Request, _admin: Admin, gotrue: GoTrueDep, config: Config
) -> dict[str, Any]:
    """GoTrue `invite.go`: 200 the (new, unconfirmed) user, `invited_at` and
    `confirmation_sent_at` set; an invitation mail whose link (`type=invite`) confirms the
    address and signs in. A confirmed user's address is 422 `email_exists`. Not affected by
    GOTRUE_DISABLE_SIGNUP, as GoTrue."""
    body = await read_body(request, InviteBody)
    email = _email_of(body.email)
    try:
        with translate_app_errors(user_exists=email_exists):
            user = await gotrue.invite(
                email=email, user_metadata=body.data or {}, links=verify_links(request, config)
            )
    except LinkRefused as exc:
        raise _link_refused(exc, "invite") from None
    # GoTrue's `sendInvite` sets `invited_at` and `confirmation_sent_at` to one time.
    return user_json(user, confirmation_sent_at=user.invited_at or utcnow())


@router.post("/admin/generate_link", openapi_extra=openapi_body(GenerateLinkBody))
async def generate_link(
    request: Request, _admin: Admin, gotrue: GoTrueDep, config: Config
) -> dict[str, Any]:
    """GoTrue `mail.go` `adminGenerateLink`: the user's fields plus `action_link`,
    `email_otp`, `hashed_token` (the link's token, what `POST /verify {token_hash}` takes),
    `verification_type` and `redirect_to`. No mail is sent; the token is stored, single use,
    as a mail's would be (and spends that user's earlier ones of its kind)."""
    body = await read_body(request, GenerateLinkBody)
    email = _email_of(body.email)
    kind = body.type or ""
    new_email = _email_of(body.new_email) if body.new_email else None
    target = allowed_redirect(body.redirect_to or request.query_params.get("redirect_to"), config)
    links = VerifyLinks(verify_url=verify_links(request, config).verify_url, redirect_to=target)
    try:
        with translate_app_errors(user_exists=email_exists):
            answer = await gotrue.generate_link(
                kind=kind,
                email=email,
                links=links,
                password=body.password,
                new_email=new_email,
                user_metadata=body.data,
            )
    except LinkRefused as exc:
        raise _link_refused(exc, kind) from None
    issued = answer.issued
    return {
        **user_json(answer.user),
        "action_link": issued.link,
        "email_otp": issued.code,
        "hashed_token": issued.token,
        "verification_type": answer.verification_type,
        "redirect_to": target,
    }
