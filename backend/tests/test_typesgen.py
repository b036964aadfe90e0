"""The browser package's generated types agree with the app's live OpenAPI document."""

from __future__ import annotations

from backend.app import typesgen


class TestOpenapiTs:
    def test_committed_types_match_the_live_schema(self):
        """A route's body changed without `python -m backend.app.typesgen`: this fails."""
        fresh = typesgen.generate()

        committed = typesgen.OPENAPI_TS.read_text()

        assert committed == fresh, "clients/js/src/openapi.ts is stale: run the typesgen module"

    def test_the_lifecycle_routes_are_typed(self):
        committed = typesgen.OPENAPI_TS.read_text()

        for path in (
            "/auth/sessions",
            "/auth/sessions/{session_id}",
            "/auth/logout",
            "/auth/password",
            "/auth/password/forgot",
            "/auth/password/reset",
            "/auth/email/verify",
            "/auth/email/resend",
            "/auth/email",
        ):
            assert f'"{path}": {{' in committed, path

    def test_check_mode_fails_on_a_stale_file(self, tmp_path, monkeypatch, capsys):
        stale = tmp_path / "openapi.ts"
        stale.write_text("// an old schema\n")
        monkeypatch.setattr(typesgen, "OPENAPI_TS", stale)

        assert typesgen.main(["--check"]) == 1
        assert "stale" in capsys.readouterr().out
