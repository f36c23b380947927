"""`TcpProxy`: a TCP relay on 127.0.0.1 that counts bytes and cuts connections on demand.

Tests point a client's endpoints at the proxy to drop a connection after a request was
forwarded but before its answer is relayed, to stop and resume traffic, or to measure the
bytes a sync puts on the wire (request and response, headers included).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable

from cogsync.config import Config

Predicate = Callable[[bytes], bool]


@dataclasses.dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    request: bytearray = dataclasses.field(default_factory=bytearray)
    doomed: bool = False
    silent: bool = False


class TcpProxy:
    """Relays ``127.0.0.1:port`` to ``target_port``.

    Attributes:
        bytes_up: bytes relayed client -> server.
        bytes_down: bytes relayed server -> client.
        requests: the bytes of each request seen (a request ends when its answer starts).
        answers: the first 512 bytes of each answer (an HTTP status line and headers).
        cuts: connections cut by `cut_answer_to`.
        refusing: while True new connections are closed at once.
        rate: bytes per second each direction of the link carries, shared by all its
            connections as one network link's bandwidth is (None: unlimited).
        delay: seconds each chunk is held before it is relayed (a link's one-way latency).
    """

    def __init__(self, target_port: int, *, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target_port = target_port
        self.port = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self.requests: list[bytes] = []
        self.answers: list[bytes] = []
        self.cuts = 0
        self.refusing = False
        self.rate: float | None = None
        self.delay = 0.0
        self._free_at: dict[str, float] = {}  # per direction: when the link is next free
        self._cut: list[Predicate] = []
        self._hold: list[tuple[Predicate, Callable[[], Awaitable[object]]]] = []
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> TcpProxy:
        """Start listening on a free port."""
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        """Stop listening and cut every connection."""
        if self._server is not None:
            self._server.close()
        await self.drop_connections()  # the relays see their sockets go and end
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def config_for(self, config: Config) -> Config:
        """``config`` with its GraphQL, real-time and identity endpoints routed via the proxy."""

        def via(url: str) -> str:
            scheme, rest = url.split("://", 1)
            path = rest.split("/", 1)[1]
            return f"{scheme}://{self.host}:{self.port}/{path}"

        assert config.identity_endpoint is not None
        return dataclasses.replace(
            config,
            graphql_url=via(config.graphql_url),
            realtime_url=via(config.realtime_url),
            identity_endpoint=via(config.identity_endpoint),
        )

    def throttle(self, bits_per_second: float, latency: float) -> None:
        """Act as a slow link: ``bits_per_second`` each way, ``latency`` seconds one way."""
        self.rate = bits_per_second / 8
        self.delay = latency

    def cut_answer_to(self, predicate: Predicate) -> None:
        """Once: forward the next request matching ``predicate``, then drop its connection
        instead of relaying the answer."""
        self._cut.append(predicate)

    def hold_request(self, predicate: Predicate, action: Callable[[], Awaitable[object]]) -> None:
        """Once: before forwarding data of a request matching ``predicate``, await ``action``."""
        self._hold.append((predicate, action))

    async def drop_connections(self) -> None:
        """Cut every open connection (HTTP keep-alive and WebSocket alike)."""
        for link in list(self._links):
            for writer in (link.client, link.upstream):
                writer.transport.abort()
        self._links.clear()

    async def drop_silently(self) -> None:
        """Cut every open connection on the server side only, as a NAT or load balancer
        forgetting an idle connection does: the client learns of it when it next sends."""
        for link in list(self._links):
            link.silent = True
            link.upstream.transport.abort()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await asyncio.gather(self._pump_up(reader, link), self._pump_down(up_reader, link))
        finally:
            self._tasks.discard(task)

    async def _pump_up(self, reader: asyncio.StreamReader, link: _Link) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                if link.silent:
                    break
                link.request += data
                for entry in list(self._hold):
                    if entry[0](bytes(link.request)):
                        self._hold.remove(entry)
                        await entry[1]()
                for predicate in list(self._cut):
                    if predicate(bytes(link.request)):
                        self._cut.remove(predicate)
                        link.doomed = True
                self.bytes_up += len(data)
                await self._relay(link.upstream, data, "up")
        self._end(link)

    async def _pump_down(self, reader: asyncio.StreamReader, link: _Link) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                if link.request:
                    self.requests.append(bytes(link.request))
                    self.answers.append(data[:512])
                    link.request.clear()
                if link.doomed:
                    self.cuts += 1
                    break
                self.bytes_down += len(data)
                await self._relay(link.client, data, "down")
        if not link.silent:
            self._end(link)

    async def _relay(self, writer: asyncio.StreamWriter, data: bytes, direction: str) -> None:
        if self.rate is not None or self.delay:
            await self._pace(writer, data, direction)
        else:
            writer.write(data)
        await writer.drain()

    async def _pace(self, writer: asyncio.StreamWriter, data: bytes, direction: str) -> None:
        """Send ``data`` as a link would: its pieces take turns with every connection's
        pieces in ``direction`` at the link's rate, and each arrives one latency after it
        was sent."""
        loop = asyncio.get_running_loop()
        sent = max(loop.time(), self._free_at.get(direction, 0.0))
        arrivals = []
        for start in range(0, len(data), 16384):  # reserved at once: no await in between
            piece = data[start : start + 16384]
            if self.rate is not None:
                sent += len(piece) / self.rate
            arrivals.append((sent + self.delay, piece))
        self._free_at[direction] = sent
        for due, piece in arrivals:
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            writer.write(piece)

    def _end(self, link: _Link) -> None:
        self._links.discard(link)
        for writer in (link.client, link.upstream):
            writer.transport.abort()
