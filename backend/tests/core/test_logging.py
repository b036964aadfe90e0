"""The redaction that every log record goes through."""

from __future__ import annotations

import logging

import pytest

from backend.app.core.logging import install_redaction, redact


class TestRedact:
    @pytest.mark.parametrize(
        ("line", "secret"),
        [
            ("Authorization: Bearer abc123.def", "abc123"),
            ("headers={'authorization': 'Bearer tok-en'}", "tok-en"),
            ("cookie: sb_refresh_token=r3fresh; myideas_csrf=n0nce", "r3fresh"),
            ("Set-Cookie: sb_refresh_token=r3fresh; HttpOnly", "r3fresh"),
            ('{"password": "hunter22"}', "hunter22"),
            ("GET /x?access_token=qq11&x=1", "qq11"),
            ("token eyJhbGciOi.eyJzdWIi.c2lnbmF0dXJl here", "eyJzdWIi"),
        ],
    )
    def test_redact_removes_secret(self, line, secret):
        assert secret not in redact(line)

    def test_redact_leaves_ordinary_text(self):
        line = '127.0.0.1:5000 - "POST /auth/signin HTTP/1.1" 200'

        assert redact(line) == line

    def test_records_of_any_logger_are_redacted_at_creation(self, caplog):
        """The record factory, not one handler, does it: any handler sees clean text."""
        install_redaction()
        caplog.set_level(logging.INFO)

        logging.getLogger("some.library").info("sent %s", {"Authorization": "Bearer s3cret"})

        assert "s3cret" not in caplog.text
        assert "[REDACTED]" in caplog.text


class TestJsonFormatter:
    def test_record_becomes_one_json_line_with_extra_fields(self):
        import json

        from backend.app.core.logging import JsonFormatter

        record = logging.makeLogRecord(
            {"name": "backend.app.api.auth", "levelname": "INFO", "msg": "user signed in",
             "user_id": "u1"}
        )  # fmt: skip

        entry = json.loads(JsonFormatter().format(record))

        assert entry["message"] == "user signed in"
        assert entry["logger"] == "backend.app.api.auth"
        assert entry["user_id"] == "u1"
