"""The `myideas` command: serve, migrate, doctor."""

from __future__ import annotations

import asyncio
import functools
import http.server
import threading
from pathlib import Path

import sqlalchemy as sa
import typer
import uvicorn

from backend.app.core.logging import configure_logging
from backend.app.core.settings import PROJECT_ROOT, get_settings
from backend.app.db.engine import Database
from backend.app.db.migrate import upgrade_to_head

__all__ = ["main", "serve_frontend"]

cli = typer.Typer(help="My Ideas auth service.", no_args_is_help=True)
FRONTEND_DIR = PROJECT_ROOT / "frontend"


def serve_frontend(host: str, port: int, directory: Path) -> http.server.ThreadingHTTPServer:
    """Serve the demo SPA's static files from a background thread, on an origin of its own
    (like the Vite dev server of the course), so the SPA calls the API cross-origin as in
    production. Port 0 picks a free port; `server.server_address` tells which."""

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
    if spa_port and FRONTEND_DIR.exists():
        serve_frontend(host, spa_port, FRONTEND_DIR)
        typer.echo(f"Demo SPA on http://localhost:{spa_port}  (API on http://localhost:{port})")
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


@cli.command()
def doctor() -> None:
    """Print the configuration (no secrets) and check that the database answers."""
    settings = get_settings()
    url = sa.engine.make_url(settings.database_url)
    typer.echo(f"environment:   {settings.environment}")
    typer.echo(f"auth provider: {settings.auth_provider}")
    typer.echo(f"database:      {url.render_as_string(hide_password=True)}")
    typer.echo(
        f"redis:         {'configured' if settings.redis_url else 'not set (in-process limiter)'}"
    )
    typer.echo(f"cors origins:  {', '.join(settings.cors_origins)}")

    async def check() -> None:
        database = Database(settings.database_url)
        try:
            await database.read(lambda conn: conn.execute(sa.text("SELECT 1")))
        finally:
            await database.dispose()

    try:
        asyncio.run(check())
    except Exception as exc:
        typer.echo(f"database check: FAILED ({type(exc).__name__})")
        raise typer.Exit(1) from exc
    typer.echo("database check: ok")


def main() -> None:
    cli()
