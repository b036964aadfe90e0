"""supabase-js, unchanged and run by node, against a live server on loopback.

The scenario is `js/scenario.mjs`; it prints what it observed as JSON, asserted on here. `make
test` installs its package (`js/package-lock.json`). On Node 20, supabase-js needs
`--experimental-websocket` (it builds a realtime client at `createClient`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from backend.tests.conftest import SPA_ORIGIN
from backend.tests.gotrue.mails import smtp_mails
from backend.tests.gotrue_server import ANON_KEY, SERVICE_ROLE_KEY

JS = Path(__file__).parent / "js"

pytestmark = [
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
]


@pytest.fixture
def observed(serve) -> dict[str, Any]:
    if not (JS / "node_modules" / "@supabase" / "supabase-js").is_dir():
        pytest.fail("run `npm ci --prefix backend/tests/gotrue/js` (make test does)")
    with serve(rate_limit_signin_per_account="3/minute") as url:
        completed = subprocess.run(  # noqa: S603 -- fixed arguments
            ["node", "--experimental-websocket", "--no-warnings", "scenario.mjs",  # noqa: S607
             url, ANON_KEY, SERVICE_ROLE_KEY],
            cwd=JS, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


class TestSupabaseJs:
    def test_whole_scenario(self, observed):
        """One node run drives every call; each part is asserted below, in the order run."""
        assert observed["signUp"] == {"error": None, "session": True, "metadata": {"plan": "free"}}
        assert observed["signIn"]["error"] is None
        assert observed["getUser"]["email"] == observed["getUser"]["expected"]
        # getClaims verified the ES256 token with the JWKS alone, never asking /user.
        assert observed["claims"]["error"] is None
        assert observed["claims"]["sub"] == observed["signIn"]["userId"]
        assert observed["claims"]["alg"] == "ES256"
        assert observed["claims"]["requests"] == ["GET /auth/v1/.well-known/jwks.json"]

        assert observed["refresh"] == {"error": None, "rotated": True, "twinGetsSuccessor": True}

        assert observed["updateUser"] == {
            "error": None,
            "metadata": {"a": 1, "c": 3},
            "otherSession": {
                "name": "AuthApiError", "status": 400, "code": "refresh_token_not_found"
            },
            "newPasswordWorks": True,
        }  # fmt: skip

        gone, dead = "AuthSessionMissingError", "refresh_token_not_found"
        assert observed["signOut"] == {
            "global": {"error": None, "alive": [gone, gone], "refresh": [dead, dead]},
            "local": {"error": None, "alive": [gone, True], "refresh": [dead, True]},
            "others": {"error": None, "alive": [True, gone], "refresh": [True, dead]},
        }

        admin = observed["admin"]
        assert admin["error"] is None
        assert admin["email"] == admin["expected"]
        assert admin["metadata"] == {"display_name": "Ada"}
        # One per page, newest first; earlier parts of the scenario made users too.
        assert admin["pageSize"] == 1
        assert admin["total"] >= 2
        assert (admin["nextPage"], admin["lastPage"]) == (2, admin["total"])
        assert admin["fetched"] is True
        assert admin["updated"] == {
            "error": None, "email": True, "metadata": {"display_name": "Ada", "plan": "pro"}
        }  # fmt: skip
        assert admin["gone"] == {"name": "AuthApiError", "status": 404, "code": "user_not_found"}

    def test_a_ban_through_the_admin_api(self, observed):
        """`updateUserById({ban_duration})`: sign-in and refresh 400, `getUser` 403 (GoTrue's
        statuses), Go's message for a bad duration, "none" lifts it."""
        ban = observed["ban"]
        banned = {"name": "AuthApiError", "code": "user_banned"}

        assert ban["bannedUntil"] is True
        assert ban["signIn"] == {**banned, "status": 400}
        assert ban["refresh"] == {**banned, "status": 400}
        assert ban["getUser"] == {**banned, "status": 403}
        assert ban["invalid"] == {
            "name": "AuthApiError",
            "status": 400,
            "code": "validation_failed",
            "message": 'invalid format for ban duration: time: missing unit in duration "24"',
        }
        assert ban["lifted"] is None
        assert ban["again"] is None

    def test_each_error_code_the_client_exposes(self, observed):
        errors = observed["errors"]
        codes = {name: error.get("code") for name, error in errors.items()}

        assert codes == {
            "invalid_credentials": "invalid_credentials",
            "user_already_exists": "user_already_exists",
            "email_exists": "email_exists",
            "email_not_confirmed": "email_not_confirmed",
            "weak_password": "weak_password",
            "same_password": "same_password",
            "validation_failed": "validation_failed",
            "refresh_token_not_found": "refresh_token_not_found",
            "not_admin": "not_admin",
            "user_not_found": "user_not_found",
            # The gateway's refusal is no GoTrue body: the client has no code to report.
            "invalid_api_key": None,
            # supabase-js turns this code into a missing session (and drops its own).
            "session_not_found": None,
        }
        assert errors["weak_password"]["name"] == "AuthWeakPasswordError"
        assert errors["weak_password"]["reasons"] == ["length"]
        assert errors["invalid_api_key"]["status"] == 401
        assert errors["session_not_found"]["name"] == "AuthSessionMissingError"
        assert observed["rateLimit"] == {
            "name": "AuthApiError", "status": 429, "code": "over_request_rate_limit"
        }  # fmt: skip


def _run_with_mails(serve, smtp, script: str, **overrides: Any) -> dict[str, Any]:
    """Run `js/<script>` against the API with autoconfirm off, mailing through `smtp` (a real
    SMTP server on loopback): each mail the script asks for is read from that server and
    handed to it on stdin (its link, token and code). Returns its last line, parsed."""
    if not (JS / "node_modules" / "@supabase" / "supabase-js").is_dir():
        pytest.fail("run `npm ci --prefix backend/tests/gotrue/js` (make test does)")
    settings = {
        "gotrue_mailer_autoconfirm": False,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp.port,
        "smtp_tls": "none",
    }
    with serve(**(settings | overrides)) as url:
        node = subprocess.Popen(  # noqa: S603 -- fixed arguments
            ["node", "--experimental-websocket", "--no-warnings", script,  # noqa: S607
             url, ANON_KEY, SPA_ORIGIN, SERVICE_ROLE_KEY],
            cwd=JS, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert node.stdin is not None
        assert node.stdout is not None
        try:
            last = ""
            for line in node.stdout:
                asked = json.loads(line)
                if set(asked) != {"mail", "count"}:
                    last = line
                    continue
                found = smtp_mails(smtp, asked["mail"], asked["count"])[-1]
                node.stdin.write(json.dumps(found.for_script()) + "\n")
                node.stdin.flush()
            returncode = node.wait(timeout=120)
        finally:
            if node.poll() is None:
                node.kill()
                node.wait()
            stderr = node.stderr.read() if node.stderr else ""
            for stream in (node.stdin, node.stdout, node.stderr):
                if stream is not None:
                    stream.close()
    assert returncode == 0, stderr
    result: dict[str, Any] = json.loads(last)
    return result


@pytest.fixture
def lifecycle_observed(serve, make_smtp_server) -> dict[str, Any]:
    """`js/lifecycle.mjs`, with a low mail limit and the re-authentication switch on."""
    return _run_with_mails(
        serve,
        make_smtp_server(),
        "lifecycle.mjs",
        rate_limit_email_per_recipient="3/hour",
        gotrue_security_update_password_require_reauthentication=True,
    )


@pytest.fixture
def pkce_observed(serve, make_smtp_server) -> dict[str, Any]:
    """`js/pkce.mjs`: supabase-js with `flowType: 'pkce'`."""
    return _run_with_mails(serve, make_smtp_server(), "pkce.mjs")


class TestSupabaseJsLifecycle:
    def test_sign_up_link_verify_resend_recovery_otp_and_reauthenticate(self, lifecycle_observed):
        """supabase-js's signUp, verifyOtp (token_hash and code), resend,
        resetPasswordForEmail, signInWithOtp, reauthenticate, updateUser (with the nonce,
        GOTRUE_SECURITY_UPDATE_PASSWORD_REQUIRE_REAUTHENTICATION on) and updateUser({email})
        (GoTrue's secure email change: two verifies), each mail caught by SMTP and followed."""
        observed = lifecycle_observed
        not_confirmed = {"name": "AuthApiError", "status": 400, "code": "email_not_confirmed"}
        expired = {"name": "AuthApiError", "status": 403, "code": "otp_expired"}

        assert observed["signUpLink"] == {
            "error": None,
            "session": False,
            "early": not_confirmed,
            "status": 303,
            "landsOnSite": True,
            "restored": None,
            "confirmed": True,
        }
        assert observed["verifyTokenHash"] == {
            "error": None, "session": True, "email": True, "replay": expired
        }  # fmt: skip
        assert observed["resend"] == {"error": None, "session": True}
        assert observed["recovery"] == {"error": None, "sameAnswer": True, "session": True}
        assert observed["otp"] == {
            "error": None,
            "magicLink": "magiclink",
            "session": True,
            "refused": {"name": "AuthApiError", "status": 422, "code": "otp_disabled"},
        }
        assert observed["reauthenticate"] == {"error": None, "updated": True}
        assert observed["emailChange"] == {
            "error": None,
            "pending": True,
            "twoTokens": True,
            # GoTrue's `singleConfirmationAccepted`: supabase-js reports no user, no session.
            "first": {"user": None, "session": None},
            "replay": expired,
            "applied": True,
            "session": True,
        }
        assert observed["admin"] == {
            "error": None,
            "invitedAt": True,
            "type": "invite",
            "session": True,
            "again": {"name": "AuthApiError", "status": 422, "code": "email_exists"},
            "verificationType": "recovery",
            "verified": True,
        }
        assert observed["errors"] == {
            "otp_expired": expired,
            "otp_expired_code": expired,
            "over_email_send_rate_limit": {
                "name": "AuthApiError", "status": 429, "code": "over_email_send_rate_limit"
            },
        }  # fmt: skip


class TestSupabaseJsPkce:
    def test_sign_up_recovery_and_magic_link_codes_exchanged_for_sessions(self, pkce_observed):
        """supabase-js with `flowType: 'pkce'`: each link's redirect carries `?code=` (no
        session in the URL), `exchangeCodeForSession` turns it into a session once, with the
        verifier only the asking client holds."""
        observed = pkce_observed

        assert observed["signUp"] == {
            "error": None,
            "session": False,
            "prefixed": True,
            "status": 303,
            "landsOnSite": True,
            "sessionInUrl": False,
            "exchanged": True,
            "confirmed": True,
            "replay": {"status": 404, "code": "flow_state_not_found"},
            "usedLink": "otp_expired",
        }
        assert observed["recovery"] == {
            "error": None,
            "type": "recovery",
            "redirectType": "recovery",
            "passwordRecovery": True,
            "session": True,
        }
        assert observed["otp"] == {"error": None, "type": "magiclink", "email": True}
        assert observed["stolenCode"] == {
            "name": "AuthApiError", "status": 400, "code": "bad_code_verifier"
        }  # fmt: skip


class TestSupabaseJsDisabledFeatures:
    def test_each_disabled_feature_is_gotrues_typed_error(self, observed):
        disabled = observed["disabled"]

        assert {name: (e["status"], e["code"]) for name, e in disabled.items()} == {
            "sso": (404, "saml_provider_disabled"),
            "anonymous": (422, "anonymous_provider_disabled"),
            "phone": (400, "phone_provider_disabled"),
            "id_token": (400, "provider_disabled"),
            "web3": (422, "web3_provider_disabled"),
            "linking": (404, "manual_linking_disabled"),
            "mfa": (422, "mfa_totp_enroll_not_enabled"),
            # Without a session supabase-js sends `Bearer <apikey>`: not a JWT here.
            "mfaWithoutSession": (403, "bad_jwt"),
        }
        assert disabled["sso"]["message"] == "SAML 2.0 is disabled"
        assert disabled["id_token"]["message"] == (
            'Provider (issuer "https://accounts.google.com") is not enabled'
        )
