"""A TCP forwarder to PostgreSQL that a test can cut, to simulate the database going down."""

from __future__ import annotations

import asyncio
import contextlib


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to PostgreSQL until `cut()`; then connections are refused."""

    def __init__(self, target_port: int = 5432, *, port: int = 0):
        self._target_port = target_port
        self._listen_port = port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.frozen = False

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self._listen_port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def restore(self) -> None:
        """Listen again on the same port after `cut()`, as a restarted server would."""
        self._listen_port = self.port
        await self.start()

    def freeze(self) -> None:
        """Keep every connection open but pass nothing on, as a hung server or network would."""
        self.frozen = True

    async def cut(self) -> None:
        """Stop listening and drop every open connection, as a stopped server would."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _forward(self, client_reader, client_writer) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
        self._writers |= {client_writer, server_writer}

        async def pipe(reader, writer) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await reader.read(65536):
                    if self.frozen:
                        continue
                    writer.write(data)
                    await writer.drain()
            writer.close()

        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))
        self._writers -= {client_writer, server_writer}
