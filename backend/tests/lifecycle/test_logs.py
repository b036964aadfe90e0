"""No token, link, password or mail body of the lifecycle in any log record, at any level."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from backend.tests.helpers import PASSWORD, unique_email
from backend.tests.lifecycle.mailbox import mails_to, token_of

NEW_PASSWORD = "a brand new passphrase 42"
LATER_PASSWORD = "yet another passphrase 77"


def _outbox(app: Any) -> Path:
    path: Path = app.state.services.settings.data_dir / "outbox"
    return path


async def test_the_whole_lifecycle_leaves_no_secret_in_the_logs(api, user, app, caplog):
    caplog.set_level(logging.DEBUG)
    outbox = _outbox(app)
    new_email = unique_email()

    await api.post("/auth/password/forgot", {"email": user.email})
    reset_mail = (await mails_to(outbox, user.email))[-1]
    reset_token = token_of(reset_mail, "reset-password")
    reset = await api.post("/auth/password/reset", {"token": reset_token, "password": NEW_PASSWORD})
    assert reset.status_code == 200, reset.text
    bearer = {"Authorization": f"Bearer {reset.json()['accessToken']}"}
    changed = await api.client.post(
        "/auth/password",
        json={"currentPassword": NEW_PASSWORD, "newPassword": LATER_PASSWORD},
        headers=bearer,
    )
    assert changed.status_code == 200, changed.text
    await api.client.post(
        "/auth/email",
        json={"newEmail": new_email, "currentPassword": LATER_PASSWORD},
        headers=bearer,
    )
    change_mail = (await mails_to(outbox, new_email))[-1]
    change_token = token_of(change_mail, "confirm-email")
    verified = await api.post("/auth/email/verify", {"token": change_token})
    assert verified.status_code == 200, verified.text
    refused = await api.post("/auth/password/reset", {"token": reset_token, "password": "x" * 9})
    assert refused.status_code == 400

    logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert caplog.records, "nothing was logged: the check would prove nothing"
    body_line = next(line for line in reset_mail.splitlines() if "reset-password" in line)
    for secret in (
        reset_token,
        change_token,
        PASSWORD,
        NEW_PASSWORD,
        LATER_PASSWORD,
        reset.json()["accessToken"],
        body_line.strip(),
    ):
        assert secret not in logged
