"""Fuzzed inputs to `cogsync serve`: GraphQL over HTTP, the real-time WebSocket, the
Cognito Identity API. None may make the server fail.

A seeded mutator derives every input from valid requests (the client's own GraphQL
operations with valid variables, the identity API's calls, the real-time protocol's
messages): it replaces values with wrong types, huge or odd strings and numbers, drops and
adds fields, cuts and splices text and bytes, and builds deep or wide documents. Inputs are
sent one at a time; an input counts as a *server error* if its answer has status >= 500,
if cogsync logs an ERROR while handling it (an unexpected exception), if it gets no answer
within 20 s, or if a WebSocket closes with 1011 (internal error) or without a close frame.
Counted apart, and listed: answers slower than `SLOW` (a sign of unbounded work), and
refusals (4xx) that aiohttp nevertheless logs at ERROR with a traceback (log noise).

Input classes (a class names what the input exercises, so failures group by cause):

* ``graphql-signed`` / ``graphql-unsigned`` / ``graphql-bad-signature``: mutated GraphQL
  requests, signed with valid credentials, unsigned, or with mangled SigV4 headers;
* ``graphql-deep``: documents with deeply nested selections, lists or arguments;
* ``json-deep``: deeply nested JSON bodies (arrays, objects) to ``/graphql`` and ``/``;
* ``identity``: mutated ``X-Amz-Target`` JSON calls to the identity API;
* ``websocket``: mangled handshakes, then mutated ``connection_init``/``start``/``stop``
  messages, junk text and binary frames on an authenticated connection;
* ``http-raw``: odd methods, paths, content types and header values.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import random
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import botocore.session
from botocore.credentials import Credentials
from gql.transport.appsync_auth import AppSyncIAMAuthentication

from cogsync.remote import operations
from cogsync.server.runner import EmbeddedServer

from .clients import identity_client

__all__ = ["CLASSES", "SLOW", "FuzzReport", "run_fuzz"]

CLASSES = (
    "graphql-signed",
    "graphql-unsigned",
    "graphql-bad-signature",
    "graphql-deep",
    "json-deep",
    "identity",
    "websocket",
    "http-raw",
)
_WEIGHTS = (30, 6, 6, 2, 4, 20, 20, 4)
SLOW = 1.0
"""Seconds after which an answer counts as slow (reported, not an error)."""
_TARGETS = (
    "GetId",
    "GetCredentialsForIdentity",
    "GetOpenIdToken",
    "GetOpenIdTokenForDeveloperIdentity",
    "DescribeIdentity",
    "ListIdentities",
    "LookupDeveloperIdentity",
    "DescribeIdentityPool",
)
_ODD_STRINGS = (
    "",
    "\x00",
    "'; DROP TABLE records; --",
    "🙂" * 40,
    "\ud800",
    "a" * 300,
    "x" * 70_000,
    "../../etc/passwd",
    "us-east-1:00000000-0000-0000-0000-000000000000",
    "%s%n%x",
    "\u202e\ufeff",
    "null",
    "-1",
    "1e309",
)


@dataclasses.dataclass
class FuzzReport:
    """Inputs sent and server errors, per input class."""

    inputs: Counter[str] = dataclasses.field(default_factory=Counter)
    errors: Counter[str] = dataclasses.field(default_factory=Counter)
    examples: dict[str, str] = dataclasses.field(default_factory=dict)
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    slow: Counter[str] = dataclasses.field(default_factory=Counter)
    noisy: Counter[str] = dataclasses.field(default_factory=Counter)
    noise_examples: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def total(self) -> int:
        """Inputs sent."""
        return sum(self.inputs.values())

    @property
    def server_errors(self) -> int:
        """Inputs the server failed on."""
        return sum(self.errors.values())


def _cause(records: list[logging.LogRecord]) -> str:
    """The first logged error of an input, with its exception."""
    if not records:
        return ""
    record = records[0]
    text = record.getMessage()
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        text += f" ({type(exc).__name__}: {str(exc)[:160]})"
    return text


class _ErrorLog(logging.Handler):
    """Counts ERROR records (the server logs every unexpected exception)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _odd_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.randrange(10)
    if roll == 0:
        return rng.choice(_ODD_STRINGS)
    if roll == 1:
        return rng.choice((0, -1, 2**31, 2**63, -(2**64), 10**30))
    if roll == 2:
        return rng.choice((1.5, -0.0, 1e308))
    if roll == 3:
        return rng.choice((True, False, None))
    if roll == 4 and depth < 3:
        return [_odd_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if roll == 5 and depth < 3:
        return {rng.choice(_ODD_STRINGS[:6]): _odd_value(rng, depth + 1) for _ in range(3)}
    if roll == 6:
        return "".join(chr(rng.randrange(1, 0x2FFF)) for _ in range(rng.randrange(1, 40)))
    return rng.choice(("notes", "k", "v", "1", "x" * 129, "2024-05-01T12:00:00.000Z"))


def _mutate(rng: random.Random, value: Any, depth: int = 0) -> Any:
    """``value`` with a few random changes somewhere inside."""
    if isinstance(value, dict) and value and depth < 6:
        value = dict(value)
        key = rng.choice(list(value))
        roll = rng.randrange(5)
        if roll == 0:
            del value[key]
        elif roll == 1:
            value[rng.choice(("extra", "__typename", key.upper(), ""))] = _odd_value(rng)
        elif roll == 2:
            value[key] = _odd_value(rng)
        else:
            value[key] = _mutate(rng, value[key], depth + 1)
        return value
    if isinstance(value, list) and value and depth < 6:
        value = list(value)
        index = rng.randrange(len(value))
        roll = rng.randrange(4)
        if roll == 0:
            value.pop(index)
        elif roll == 1:
            value.extend([value[index]] * rng.randrange(1, 200))
        else:
            value[index] = _mutate(rng, value[index], depth + 1)
        return value
    if isinstance(value, str) and rng.random() < 0.5:
        return _mutate_text(rng, value)
    return _odd_value(rng)


def _mutate_text(rng: random.Random, text: str) -> str:
    if not text:
        return rng.choice(_ODD_STRINGS)
    at = rng.randrange(len(text))
    roll = rng.randrange(6)
    if roll == 0:
        return text[:at]
    if roll == 1:
        return (
            text[:at] + rng.choice(("{", "}", "(", ")", "$", "!", "...", "@skip", '"')) + text[at:]
        )
    if roll == 2:
        return text[:at] + text[rng.randrange(len(text)) :]
    if roll == 3:
        return text + text[at:] * rng.randrange(1, 20)
    if roll == 4:
        return text[:at] + rng.choice(_ODD_STRINGS) + text[at:]
    return text.replace(" ", rng.choice(("", "  ", "\t", "\n", ",")))


def _graphql_seeds() -> list[dict[str, Any]]:
    """Valid requests: the client's own operations with valid variables."""
    record = {
        "op": "replace",
        "key": "k",
        "value": "v",
        "syncCount": 0,
        "deviceLastModifiedDate": "2024-05-01T12:00:00.000Z",
    }
    push = {
        "datasetName": "notes",
        "clientRequestId": "00000000-0000-4000-8000-000000000000",
        "deviceId": "fuzz",
        "protocolVersion": 1,
        "records": [record],
    }
    return [
        {"query": operations.SERVER_INFO, "variables": {}},
        {"query": operations.LIST_DATASETS, "variables": {"nextToken": None, "limit": 10}},
        {
            "query": operations.LIST_RECORDS,
            "variables": {"datasetName": "notes", "lastSyncCount": 0, "nextToken": None},
        },
        {"query": operations.PUSH_RECORDS, "variables": {"input": push}},
        {
            "query": operations.DELETE_DATASET,
            "variables": {"datasetName": "gone", "clientRequestId": "r1"},
        },
    ]


def _graphql_body(rng: random.Random) -> bytes:
    request = rng.choice(_graphql_seeds())
    for _ in range(rng.randint(1, 4)):
        request = _mutate(rng, request)
    if rng.random() < 0.05:
        return json.dumps([request]).encode()  # a batch: not accepted by AppSync
    if rng.random() < 0.1:
        text = json.dumps(request)
        return _mutate_text(rng, text).encode("utf-8", "surrogatepass")
    return json.dumps(request).encode("utf-8", "surrogatepass")


def _deep_graphql(rng: random.Random) -> bytes:
    depth = rng.choice((100, 1_000, 10_000))  # 100,000 aliases keep the server busy > 30 s
    kind = rng.randrange(4)
    if kind == 0:
        query = "{ serverInfo " + "{ a " * depth + "}" * depth + " }"
    elif kind == 1:
        query = (
            "query($x: [Int]) { listDatasets(limit: "
            + "[" * depth
            + "1"
            + "]" * depth
            + ") { nextToken } }"
        )
    elif kind == 2:
        query = "{ " + " ".join(f"a{i}: serverInfo {{ maxRecords }}" for i in range(depth)) + " }"
    else:
        fragments = " ".join(
            f"fragment f{i} on ServerInfo {{ ...f{i + 1} }}" for i in range(depth // 10)
        )
        query = "{ serverInfo { ...f0 } } " + fragments
    return json.dumps({"query": query}).encode()


def _deep_json(rng: random.Random) -> bytes:
    depth = rng.choice((1_000, 10_000, 100_000))
    inner = "[" * depth + "]" * depth
    if rng.random() < 0.5:
        inner = '{"a":' * depth + "1" + "}" * depth
    return (
        '{"query": "{ serverInfo { maxRecords } }", "variables": {"x": ' + inner + "}}"
    ).encode()


def _header_safe(value: str) -> str:
    """``value`` without the characters no HTTP client would send in a header."""
    return "".join(" " if c in "\r\n\x00" else c for c in value)


class _Fuzzer:
    def __init__(self, server: EmbeddedServer, rng: random.Random, report: FuzzReport) -> None:
        self.server, self.rng, self.report = server, rng, report
        self.config = server.config
        self.session: aiohttp.ClientSession | None = None
        self.signer: AppSyncIAMAuthentication | None = None
        self.identity_id = ""
        self.host = self.config.graphql_url.split("/")[2]

    async def setup(self) -> None:
        boto = await asyncio.to_thread(identity_client, self.config)
        pool = self.config.identity_pool_id
        self.identity_id = (await asyncio.to_thread(boto.get_id, IdentityPoolId=pool))["IdentityId"]
        answer = await asyncio.to_thread(
            boto.get_credentials_for_identity, IdentityId=self.identity_id
        )
        creds = answer["Credentials"]
        self.signer = AppSyncIAMAuthentication(
            host=self.host,
            region_name=self.config.region,
            credentials=Credentials(
                creds["AccessKeyId"], creds["SecretKey"], creds["SessionToken"]
            ),
            session=botocore.session.get_session(),
        )
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True),  # each input on its own connection
            timeout=aiohttp.ClientTimeout(total=20),
        )

    def signed(self, body: bytes) -> dict[str, str]:
        assert self.signer is not None
        headers = self.signer.get_headers(
            body.decode("utf-8", "replace"), {"content-type": "application/json"}
        )
        return {k: v for k, v in headers.items() if k.lower() != "host"}

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        assert self.session is not None
        headers = {k: _header_safe(v) for k, v in headers.items()}
        async with self.session.post(url, data=body, headers=headers) as response:
            await response.read()
            return response.status

    def inputs(
        self, count: int, classes: tuple[str, ...]
    ) -> Iterator[tuple[str, Callable[[], Awaitable[Any]], str]]:
        weights = [w for c, w in zip(CLASSES, _WEIGHTS, strict=True) if c in classes]
        for _ in range(count):
            kind = self.rng.choices([c for c in CLASSES if c in classes], weights)[0]
            yield kind, *getattr(self, "_" + kind.replace("-", "_"))()

    def _graphql_signed(self) -> tuple[Callable[[], Awaitable[Any]], str]:
        body = _graphql_body(self.rng)
        raw = body.decode("utf-8", "replace")
        if raw != body.decode("utf-8", "ignore"):
            body = raw.encode()  # signatures cover text; keep the body the signed text
        return lambda: self.post(self.config.graphql_url, body, self.signed(body)), body[
            :200
        ].decode("utf-8", "replace")

    def _graphql_unsigned(self) -> tuple[Callable[[], Awaitable[Any]], str]:
        body = _graphql_body(self.rng)
        headers = {
            "content-type": self.rng.choice(
                ("application/json", "text/plain", "", "application/graphql")
            )
        }
        return lambda: self.post(self.config.graphql_url, body, headers), body[:200].decode(
            "utf-8", "replace"
        )

    def _graphql_bad_signature(self) -> tuple[Callable[[], Awaitable[Any]], str]:
        body = json.dumps(_graphql_seeds()[self.rng.randrange(5)]).encode()
        headers = self.signed(body)
        name = self.rng.choice(list(headers))
        headers[name] = _mutate_text(self.rng, headers[name])
        if self.rng.random() < 0.3:
            body = body + b" "  # the signature no longer covers the body
        clean = {
            k: v.encode("utf-8", "replace").decode("latin-1", "replace") for k, v in headers.items()
        }
        return lambda: self.post(
            self.config.graphql_url, body, clean
        ), f"{name}: {headers[name][:120]}"

    def _graphql_deep(self) -> tuple[Callable[[], Awaitable[Any]], str]:
        body = _deep_graphql(self.rng)
        return lambda: self.post(self.config.graphql_url, body, self.signed(body)), body[
            :120
        ].decode()

    def _json_deep(self) -> tuple[Callable[[], Awaitable[Any]], str]:
        body = _deep_json(self.rng)
        if self.rng.random() < 0.5:
            return lambda: self.post(
                self.config.graphql_url, body, self.signed(body)
            ), f"/graphql {body[:100].decode()}"
        headers = {
            "X-Amz-Target": "AWSCognitoIdentityService.GetId",
            "Content-Type": "application/x-amz-json-1.1",
        }
        return lambda: self.post(self.server.url + "/", body, headers), f"/ {body[:100].decode()}"

    def _identity(self) -> tuple[Callable[[], Awaitable[Any]], str]:
        target = self.rng.choice(_TARGETS)
        seed = {
            "IdentityPoolId": self.config.identity_pool_id,
            "IdentityId": self.identity_id,
            "Logins": {"login.cogsync.dev": "token"},
            "MaxResults": 10,
            "TokenDuration": 900,
        }
        body: Any = seed
        for _ in range(self.rng.randint(1, 4)):
            body = _mutate(self.rng, body)
        if self.rng.random() < 0.15:
            target = _mutate_text(self.rng, target)
        prefix = self.rng.choice(
            ("AWSCognitoIdentityService.",) * 8 + ("", "Other.", "AWSCognitoIdentityService")
        )
        data = json.dumps(body).encode("utf-8", "surrogatepass")
        if self.rng.random() < 0.1:
            data = _mutate_text(self.rng, data.decode("utf-8", "replace")).encode(
                "utf-8", "surrogatepass"
            )
        headers = {
            "X-Amz-Target": (prefix + target).encode("utf-8", "replace").decode("latin-1"),
            "Content-Type": self.rng.choice(
                ("application/x-amz-json-1.1", "application/json", "text/plain")
            ),
        }
        return lambda: self.post(
            self.server.url + "/", data, headers
        ), f"{prefix}{target} {data[:150]!r}"

    def _http_raw(self) -> tuple[Callable[[], Awaitable[Any]], str]:
        method = self.rng.choice(("GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "POST"))
        path = self.rng.choice(
            (
                "/",
                "/graphql",
                "/graphql/realtime",
                "/admin",
                "/%00",
                "/graphql?x=" + "y" * 2000,
                "/" + "a/" * 100,
            )
        )
        headers = {
            self.rng.choice(
                ("Content-Type", "Content-Encoding", "Accept", "X-Amz-Date", "Authorization")
            ): self.rng.choice(
                ("gzip", "deflate", "*/*", "\t", "x" * 4000, "application/json; charset=bogus")
            )
        }
        body = self.rng.choice(
            (
                b"",
                b"{}",
                b"\x1f\x8b\x08\x00junk",
                bytes(self.rng.randrange(256) for _ in range(200)),
            )
        )

        async def send() -> int:
            assert self.session is not None
            safe = {k: _header_safe(v) for k, v in headers.items()}
            async with self.session.request(
                method, self.server.url + path, data=body, headers=safe
            ) as response:
                await response.read()
                return response.status

        return send, f"{method} {path[:60]} {headers} {body[:40]!r}"

    def _websocket(self) -> tuple[Callable[[], Awaitable[Any]], str]:
        assert self.signer is not None
        connect = self.signer.get_headers()
        header = base64.b64encode(json.dumps(connect).encode()).decode()
        mangle = self.rng.random() < 0.25
        if mangle:
            header = _mutate_text(self.rng, header)
        url = self.config.realtime_url + f"?header={header}&payload=e30="
        query = (
            "subscription S($identityId: ID!) { onDatasetChanged(identityId: $identityId) "
            "{ identityId datasetName syncCount deleted } }"
        )
        messages: list[str | bytes] = [json.dumps({"type": "connection_init"})]
        for _ in range(self.rng.randint(1, 4)):
            data = json.dumps({"query": query, "variables": {"identityId": self.identity_id}})
            start: Any = {
                "id": "s1",
                "type": "start",
                "payload": {
                    "data": data,
                    "extensions": {"authorization": self.signer.get_headers(data)},
                },
            }
            roll = self.rng.randrange(6)
            if roll < 3:
                start = _mutate(self.rng, start)
                if self.rng.random() < 0.5:
                    start = _mutate(self.rng, start)
                messages.append(json.dumps(start))
            elif roll == 3:
                messages.append(_mutate_text(self.rng, json.dumps(start)))
            elif roll == 4:
                messages.append(
                    json.dumps(
                        {
                            "type": self.rng.choice(
                                ("stop", "ka", "connection_init", "bogus", None)
                            ),
                            "id": _odd_value(self.rng),
                        }
                    )
                )
            else:
                messages.append(
                    bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 64)))
                )
        protocols = self.rng.choice((("graphql-ws",), ("graphql-ws",), (), ("other",)))

        async def send() -> int:
            assert self.session is not None
            async with self.session.ws_connect(url, protocols=protocols, heartbeat=None) as ws:
                for message in messages:
                    if isinstance(message, str):
                        data = message.encode("utf-8", "surrogatepass")
                        if data == message.encode("utf-8", "replace"):
                            await ws.send_str(message)
                            continue
                        message = data  # a lone surrogate: not text, send the bytes
                    await ws.send_bytes(message)
                await ws.close()  # the server answers the close frame after the messages
                code = ws.close_code
                return 500 if code in (1006, 1011) else 200

        return send, f"{'mangled handshake; ' if mangle else ''}{[m[:120] for m in messages[1:]]}"

    async def run(self, count: int, classes: tuple[str, ...], log: _ErrorLog) -> None:
        for kind, send, description in self.inputs(count, classes):
            before, started = len(log.records), time.perf_counter()
            try:
                status = await send()
            except aiohttp.WSServerHandshakeError as exc:
                status = exc.status
            except aiohttp.ClientResponseError as exc:
                # an answer came but the client could not take it: aiohttp answers a
                # malformed HEAD with a 400 that has a body, which its client refuses
                status = exc.status or 599
                description += f" -> {exc!r}"
            except (TimeoutError, aiohttp.ClientError) as exc:
                status = 599  # the server dropped the connection or never answered
                description += f" -> {exc!r}"
            except (UnicodeError, ValueError):
                continue  # the client refuses to send it: not an input the server can get
            self.report.inputs[kind] += 1
            took = time.perf_counter() - started
            self.report.seconds[kind] = self.report.seconds.get(kind, 0.0) + took
            self.report.slow[kind] += took > SLOW
            logged = log.records[before:]
            failed = status >= 500 or any(r.name.startswith("cogsync") for r in logged)
            if logged and not failed:
                self.report.noisy[kind] += 1  # e.g. aiohttp's traceback for a 400 it sent
                self.report.noise_examples.setdefault(kind, f"HTTP {status} {_cause(logged)}")
            if failed:
                self.report.errors[kind] += 1
                if kind not in self.report.examples:
                    cause = _cause(log.records[before:])
                    self.report.examples[kind] = f"HTTP {status} {cause} <- {description[:300]}"


async def _fuzz(
    server: EmbeddedServer, seed: int, count: int, classes: tuple[str, ...]
) -> FuzzReport:
    report = FuzzReport()
    fuzzer = _Fuzzer(server, random.Random(f"{seed}:fuzz"), report)
    log = _ErrorLog()
    root = logging.getLogger()
    root.addHandler(log)
    try:
        await fuzzer.setup()
        await fuzzer.run(count, classes, log)
    finally:
        root.removeHandler(log)
        if fuzzer.session is not None:
            await fuzzer.session.close()
    return report


def run_fuzz(seed: int, count: int, *, classes: tuple[str, ...] = CLASSES) -> FuzzReport:
    """Send ``count`` fuzzed inputs of ``classes`` to a fresh server in this process."""
    for name in ("aiohttp.server", "aiohttp.web", "cogsync"):
        logging.getLogger(name).propagate = True
    with (
        tempfile.TemporaryDirectory(prefix="cogsync-fuzz-") as tmp,
        EmbeddedServer(Path(tmp) / "server") as server,
    ):
        return asyncio.run(_fuzz(server, seed, count, classes))
