"""`FaultyLink`: a TCP relay on 127.0.0.1 that makes requests meet network faults.

Each HTTP request crossing the link (one per keep-alive round trip) meets a fault with
probability `FaultyLink.rate`; the fault is one of:

* ``reset``: the connection is aborted before the request reaches the server;
* ``lost_answer``: the request is forwarded, the server processes it, and the connection is
  aborted when the answer starts, so the client never learns the outcome;
* ``truncated``: part of the answer is relayed, then the connection is aborted.

A request starts when client bytes arrive after the previous answer began (aiohttp does not
pipeline). Counts of each fault go to the `FaultCounts` shared by the links of a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import re
from collections import Counter
from collections.abc import Callable

KINDS = ("reset", "lost_answer", "truncated")
_OPERATION = re.compile(rb"(pushRecords|listRecords|deleteDataset|listDatasets)")


@dataclasses.dataclass
class FaultCounts:
    """Faults injected and requests relayed, over every link of a worker."""

    requests: int = 0
    faults: Counter[str] = dataclasses.field(default_factory=Counter)


class _Connection:
    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.client, self.upstream = client, upstream
        self.answering = True  # True until the first request bytes arrive
        self.fault: str | None = None

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            writer.transport.abort()


class FaultyLink:
    """Relays ``127.0.0.1:port`` to ``target_port``, faulting requests at ``rate``."""

    def __init__(
        self, target_port: int, rng: random.Random, counts: FaultCounts, rate: float = 0.0
    ) -> None:
        self.target_port, self.rng, self.counts, self.rate = target_port, rng, counts, rate
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self.on_fault: Callable[[str, str], None] | None = None  # (kind, operation)

    async def start(self) -> FaultyLink:
        """Listen on a free port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        """Stop listening and abort every connection."""
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.abort()
        self._connections.clear()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()  # the server is down (restarting): refuse like it would
            return
        connection = _Connection(writer, up_writer)
        self._connections.add(connection)
        try:
            await asyncio.gather(
                self._pump_up(reader, connection), self._pump_down(up_reader, connection)
            )
        finally:
            self._connections.discard(connection)
            connection.abort()

    def _new_request(self, connection: _Connection, data: bytes) -> None:
        connection.answering = False
        connection.fault = None
        self.counts.requests += 1
        if self.rate and self.rng.random() < self.rate:
            connection.fault = self.rng.choice(KINDS)
            self.counts.faults[connection.fault] += 1
            if self.on_fault is not None:
                found = _OPERATION.search(data)
                self.on_fault(connection.fault, found[1].decode() if found else "request")

    async def _pump_up(self, reader: asyncio.StreamReader, connection: _Connection) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                if connection.answering:
                    self._new_request(connection, data)
                if connection.fault == "reset":
                    break
                connection.upstream.write(data)
                await connection.upstream.drain()
        connection.abort()

    async def _pump_down(self, reader: asyncio.StreamReader, connection: _Connection) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                connection.answering = True
                if connection.fault == "lost_answer":
                    break
                if connection.fault == "truncated":
                    connection.client.write(data[: self.rng.randrange(max(1, len(data) - 1))])
                    await connection.client.drain()
                    break
                connection.client.write(data)
                await connection.client.drain()
        connection.abort()
