"""The `myideas` command: serve, migrate, doctor."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import http.server
import json
import threading
from pathlib import Path

import sqlalchemy as sa
import typer
import uvicorn
from rich.console import Console
from rich.table import Table
from rich.text import Text

from backend.app.core.logging import configure_logging
from backend.app.core.settings import PROJECT_ROOT, get_settings
from backend.app.db.migrate import upgrade_to_head
from backend.app.doctor import TIMEOUT_SECONDS, Check, Serving, Status, diagnose

__all__ = ["main", "serve_frontend"]

cli = typer.Typer(help="My Ideas auth service.", no_args_is_help=True)
# The demo SPA as `vite build` writes it (`make run` builds it first).
FRONTEND_DIR = PROJECT_ROOT / "frontend" / "dist"


def serve_frontend(host: str, port: int, directory: Path) -> http.server.ThreadingHTTPServer:
    """Serve the built demo SPA (frontend/dist) from a background thread, on an origin of its
    own (like the Vite dev server of the course, port 5173), so the SPA calls the API
    cross-origin as in production. Port 0 picks a free port; `server.server_address` tells
    which."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(Handler, directory=str(directory))
    server = http.server.ThreadingHTTPServer((host, port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@cli.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address for the API and the demo SPA."),
    port: int = typer.Option(8000, help="API port."),
    spa_port: int = typer.Option(5173, help="Demo SPA port; 0 to not serve it."),
    reload: bool = typer.Option(False, help="Restart the API when code changes."),
) -> None:
    """Run the API (and the demo SPA on its own origin)."""
    configure_logging()
    if spa_port and (FRONTEND_DIR / "index.html").exists():
        serve_frontend(host, spa_port, FRONTEND_DIR)
        typer.echo(f"Demo SPA on http://localhost:{spa_port}  (API on http://localhost:{port})")
    elif spa_port:
        typer.echo("No demo SPA: frontend/dist is not built (`make run` builds it).")
    forwarded_allow_ips = get_settings().forwarded_allow_ips
    uvicorn.run(
        "backend.app.main:app",
        host=host,
        port=port,
        reload=reload,
        log_config=None,
        # X-Forwarded-For is believed only from the proxies FORWARDED_ALLOW_IPS names.
        proxy_headers=bool(forwarded_allow_ips),
        forwarded_allow_ips=forwarded_allow_ips,
    )


@cli.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    settings = get_settings()

    asyncio.run(upgrade_to_head(settings.database_url))
    typer.echo(
        f"Schema is up to date ({sa.engine.make_url(settings.database_url).get_backend_name()})."
    )


_STATUS_STYLE = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "bold red"}


@cli.command()
def doctor(
    host: str = typer.Option("127.0.0.1", help="Address the API is served on (as `serve`)."),
    port: int = typer.Option(8000, help="Port the API is served on (as `serve`)."),
    spa_origin: str = typer.Option(
        "http://localhost:5173", help="Origin the browser opens the SPA at."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the checks as a JSON list."),
    timeout: float = typer.Option(TIMEOUT_SECONDS, help="Seconds to wait for each service."),
) -> None:
    """Check the configuration against the running world; exit 1 when something will break."""
    serving = Serving(host=host, port=port, spa_origin=spa_origin.rstrip("/"))
    checks = asyncio.run(diagnose(serving=serving, timeout_seconds=timeout))
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(check) for check in checks], indent=2))
    else:
        _print_checks(checks)
    if any(check.status is Status.FAIL for check in checks):
        raise typer.Exit(1)


def _print_checks(checks: list[Check]) -> None:
    table = Table(show_lines=True, title="myideas doctor")
    table.add_column("", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("finding")
    table.add_column("fix")
    for check in checks:
        style = _STATUS_STYLE[check.status]
        # Text, not markup: a message may hold brackets ("[Errno 111]") that rich would eat.
        table.add_row(
            Text(check.status, style=style), Text(check.name), Text(check.message), Text(check.fix)
        )
    console = Console()
    console.print(table)
    counts = {status: sum(check.status is status for check in checks) for status in Status}
    console.print(
        f"{counts[Status.FAIL]} fail, {counts[Status.WARN]} warn, {counts[Status.OK]} ok",
        style=_STATUS_STYLE[Status.FAIL] if counts[Status.FAIL] else None,
    )


def main() -> None:
    cli()
