"""GoTrue's own answers for the features this server does not offer.

A Supabase project with SSO, anonymous sign-ins, phone, OAuth ID tokens, Web3, manual identity
linking or MFA switched off answers with GoTrue's "disabled" errors, which the clients turn into
typed errors; so does this server, instead of a 404 of its own. Each answer names its upstream
source (supabase/auth `internal/api/`); the order of the checks is GoTrue's (authentication
first where GoTrue's router asks for it).
"""

from __future__ import annotations

import json
import uuid
from typing import Any, NoReturn

import jwt
from fastapi import APIRouter, Request

from .callers import ApiKey, SignedIn
from .errors import GoTrueCode, GoTrueError, GoTrueOAuthError, validation_failed
from .schemas import parse_json_object

__all__ = ["id_token_grant", "router", "web3_grant"]

router = APIRouter(tags=["gotrue"])

# `token_oidc.go` `getProvider`: the providers whose issuer is fixed (Apple's and Azure's are
# read from the ID token).
_ISSUERS = {
    "google": "https://accounts.google.com",
    "facebook": "https://www.facebook.com",
    "kakao": "https://kauth.kakao.com",
    "snapchat": "https://accounts.snapchat.com/accounts/oauth2/token",
    "vercel_marketplace": "https://marketplace.vercel.com",
    "keycloak": "",  # GOTRUE_EXTERNAL_KEYCLOAK_URL, unset
}
_DETECTED = {"apple": "Apple", "azure": "Azure"}
_MFA_ENROLL = {
    "totp": ("mfa_totp_enroll_not_enabled", "TOTP"),
    "phone": ("mfa_phone_enroll_not_enabled", "Phone"),
    "webauthn": ("mfa_webauthn_enroll_not_enabled", "WebAuthn"),
}


def _saml_disabled() -> NoReturn:
    # middleware.go `requireSAMLEnabled`
    raise GoTrueError(404, GoTrueCode.SAML_PROVIDER_DISABLED, "SAML 2.0 is disabled")


@router.post("/sso")
async def sso(_key: ApiKey) -> dict[str, Any]:
    """GoTrue `sso.go`, with SAML off (`GOTRUE_SAML_ENABLED` false): 404."""
    _saml_disabled()


@router.get("/sso/saml/metadata")
async def saml_metadata(_key: ApiKey) -> dict[str, Any]:
    _saml_disabled()


@router.post("/sso/saml/acs")
async def saml_acs(_key: ApiKey) -> dict[str, Any]:
    _saml_disabled()


def _manual_linking_disabled() -> NoReturn:
    # middleware.go `requireManualLinkingEnabled`, after `requireAuthentication`
    raise GoTrueError(404, GoTrueCode.MANUAL_LINKING_DISABLED, "Manual linking is disabled")


@router.get("/user/identities/authorize")
async def link_identity(_caller: SignedIn) -> dict[str, Any]:
    """`linkIdentity` / `link_identity`: GoTrue with manual linking off."""
    _manual_linking_disabled()


@router.delete("/user/identities/{identity_id}")
async def unlink_identity(identity_id: str, _caller: SignedIn) -> dict[str, Any]:
    """`unlinkIdentity` / `unlink_identity`: GoTrue with manual linking off."""
    _manual_linking_disabled()


@router.post("/factors")
async def enroll_factor(request: Request, _caller: SignedIn) -> dict[str, Any]:
    """GoTrue `mfa.go` `EnrollFactor` with every factor type's enrolment off: 422 by type."""
    body = parse_json_object(await request.body())
    factor_type = body.get("factor_type")
    if not isinstance(factor_type, str) or factor_type not in _MFA_ENROLL:
        raise validation_failed("factor_type needs to be totp, phone, or webauthn")
    code, name = _MFA_ENROLL[factor_type]
    raise GoTrueError(422, GoTrueCode(code), f"MFA enroll is disabled for {name}")


def _no_factor(factor_id: str) -> NoReturn:
    # admin.go `loadFactor`: no user has a factor here
    try:
        uuid.UUID(factor_id)
    except ValueError:
        raise GoTrueError(404, GoTrueCode.VALIDATION_FAILED, "factor_id must be an UUID") from None
    raise GoTrueError(404, GoTrueCode.MFA_FACTOR_NOT_FOUND, "Factor not found")


@router.post("/factors/{factor_id}/challenge")
async def challenge_factor(factor_id: str, _caller: SignedIn) -> dict[str, Any]:
    _no_factor(factor_id)


@router.post("/factors/{factor_id}/verify")
async def verify_factor(factor_id: str, _caller: SignedIn) -> dict[str, Any]:
    _no_factor(factor_id)


@router.delete("/factors/{factor_id}")
async def unenroll_factor(factor_id: str, _caller: SignedIn) -> dict[str, Any]:
    _no_factor(factor_id)


def _quoted(value: str) -> str:
    return json.dumps(value)  # Go's %q, for the ASCII a provider name or issuer is


def id_token_grant(body: dict[str, Any]) -> NoReturn:
    """`grant_type=id_token` (`signInWithIdToken`), every OAuth provider off
    (`token_oidc.go` `IdTokenGrant`, `getProvider`)."""
    id_token, provider = body.get("id_token"), body.get("provider")
    issuer, client_id = body.get("issuer"), body.get("client_id")
    if not id_token or not isinstance(id_token, str):
        raise GoTrueOAuthError("id_token required", error="invalid request")
    if not provider and not (client_id and issuer):
        raise GoTrueOAuthError("provider or client_id and issuer required", error="invalid request")
    provider = provider if isinstance(provider, str) else ""
    issuer = issuer if isinstance(issuer, str) else ""
    for name, fixed in _ISSUERS.items():
        if provider == name or (fixed and issuer == fixed):
            raise _provider_disabled(fixed)
    for name, label in _DETECTED.items():
        if provider == name:
            try:
                detected = jwt.decode(id_token, options={"verify_signature": False}).get("iss")
            except jwt.PyJWTError:
                detected = None
            if not isinstance(detected, str) or not detected:
                raise validation_failed(f"Unable to detect issuer in ID token for {label} provider")
            raise _provider_disabled(detected)
    if provider.startswith("custom:"):
        raise validation_failed("Custom OAuth providers are disabled")
    raise validation_failed(f"Custom OIDC provider {_quoted(provider)} not allowed")


def _provider_disabled(issuer: str) -> GoTrueError:
    return GoTrueError(
        400, GoTrueCode.PROVIDER_DISABLED, f"Provider (issuer {_quoted(issuer)}) is not enabled"
    )


def web3_grant() -> NoReturn:
    """`grant_type=web3` (`signInWithWeb3`), Solana and Ethereum off (`web3.go`)."""
    raise GoTrueError(422, GoTrueCode.WEB3_PROVIDER_DISABLED, "Web3 provider is disabled")
