"""A real uvicorn on loopback, in a background thread, for tests that need real HTTP and cookies."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI


@contextmanager
def live_server(app: FastAPI, *, port: int = 0, log_level: str = "info") -> Iterator[str]:
    """Serve `app` on 127.0.0.1 (`port`, or a free one); yields the base URL; stops on exit."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level, log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
