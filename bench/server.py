"""The app under benchmark, plus a bare JSON route as the baseline on the same server.

Run by `bench.run` as `python -m bench.server PORT DATA_DIR`: one uvicorn worker, no access log.
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from backend.app.core.settings import Settings
from backend.app.main import create_app


def build(data_dir: Path) -> FastAPI:
    settings = Settings(
        _env_file=None,
        data_dir=data_dir,
        rate_limit_signin_per_account="100000/minute",
        rate_limit_signin_per_address="100000/minute",
    )
    app = create_app(settings)

    @app.get("/bench/bare", include_in_schema=False)
    async def bare() -> dict[str, str]:
        return {"status": "ok"}

    return app


if __name__ == "__main__":
    port, data_dir = int(sys.argv[1]), Path(sys.argv[2])
    uvicorn.run(build(data_dir), host="127.0.0.1", port=port, access_log=False, log_level="warning")
