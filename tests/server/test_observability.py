"""The access log and ``GET /metrics`` of a real server, checked against a scripted client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from gql.transport.exceptions import TransportQueryError
from prometheus_client.parser import text_string_to_metric_families
from server_wire import LIST_RECORDS, SUBSCRIBE, http_client, new_identity, op, push, ws_client

from cogsync.server.log_format import JsonFormatter, quiet_client_faults
from cogsync.server.runner import EmbeddedServer

SECRET_VALUE = "value-that-must-not-be-logged"


async def _scripted_sync(server: EmbeddedServer) -> tuple[str, Any]:
    """GetId + credentials, a subscription, 2 accepted pushes (3 + 2 records), a conflict,
    one listRecords; returns the identity id and its credentials."""
    identity_id, creds = await new_identity(server)
    async with ws_client(server, creds) as ws, http_client(server, creds) as http:
        subscription = ws.subscribe(op(SUBSCRIBE, id=identity_id))
        waiting = asyncio.ensure_future(anext(subscription))
        await asyncio.sleep(0.3)
        values = {"a": SECRET_VALUE, "b": "2", "c": "3"}
        await http.execute(push("prefs", "r-1", values))
        await asyncio.wait_for(waiting, 10)
        await http.execute(push("other", "r-2", {"x": "1", "y": "2"}))
        with pytest.raises(TransportQueryError, match="ConflictException"):
            await http.execute(push("prefs", "r-3", {"a": "again"}))
        await http.execute(op(LIST_RECORDS, n="prefs", s=0))
        await subscription.aclose()
    return identity_id, creds


async def _scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    async with aiohttp.ClientSession() as session, session.get(url) as answer:
        assert answer.status == 200
        text = await answer.text()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


async def test_access_log_has_one_line_per_request_and_no_secret(
    server: EmbeddedServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="cogsync.access"):
        identity_id, creds = await _scripted_sync(server)
        for _ in range(50):  # the WebSocket line is written when the server sees it close
            if any(r.__dict__.get("status") == 101 for r in caplog.records):
                break
            await asyncio.sleep(0.1)
    lines = [r for r in caplog.records if r.name == "cogsync.access"]
    graphql = [r for r in lines if r.__dict__["path"] == "/graphql" and r.method == "POST"]
    identity = [r for r in lines if r.__dict__["path"] == "/"]
    sockets = [r for r in lines if r.__dict__["status"] == 101]
    assert len(graphql) == 4 and len(identity) == 2 and len(sockets) == 1
    assert [r.__dict__["status"] for r in graphql] == [200, 200, 200, 200]
    for record in lines:
        assert record.__dict__["identity_id"] == identity_id
        assert record.__dict__["duration_ms"] >= 0
    assert sockets[0].__dict__["path"] == "/graphql/realtime"
    text = "\n".join(r.getMessage() + JsonFormatter().format(r) for r in lines)
    for secret in (SECRET_VALUE, creds.secret_key, creds.token, creds.access_key):
        assert secret not in text
    assert '"identity_id": "' + identity_id in text and '"method": "POST"' in text


async def test_metrics_match_the_scripted_operations(server: EmbeddedServer) -> None:
    await _scripted_sync(server)
    for _ in range(50):  # the WebSocket is counted when the server sees it close
        metrics = await _scrape(server.url + "/metrics")
        if (("operation", "realtime"), ("outcome", "ok")) in metrics["cogsync_requests_total"]:
            break
        await asyncio.sleep(0.1)
    requests = metrics["cogsync_requests_total"]

    def count(operation: str, outcome: str = "ok") -> float:
        return requests.get((("operation", operation), ("outcome", outcome)), 0.0)

    assert count("GetId") == 1 and count("GetCredentialsForIdentity") == 1
    assert count("pushRecords") == 2 and count("pushRecords", "ConflictException") == 1
    assert count("listRecords") == 1 and count("realtime") == 1
    assert metrics["cogsync_push_batches_total"][()] == 2
    assert metrics["cogsync_push_records_total"][()] == 5
    assert metrics["cogsync_conflicts_total"][()] == 1
    assert metrics["cogsync_notifications_sent_total"][()] == 2  # both pushes
    assert metrics["cogsync_notifications_dropped_total"][()] == 0
    assert metrics["cogsync_identities"][()] == 1
    assert metrics["cogsync_database_bytes"][()] > 0
    latency = metrics["cogsync_request_duration_seconds_count"]
    assert latency[(("operation", "pushRecords"),)] == 3


async def test_open_connections_and_subscriptions_on_a_separate_metrics_port(
    tmp_path: Path,
) -> None:
    async with EmbeddedServer(tmp_path / "data", metrics_port=0) as server:
        assert server.metrics_port not in (None, server.port)
        async with aiohttp.ClientSession() as session, session.get(server.url + "/metrics") as a:
            assert a.status == 404  # not on the main port
        identity_id, creds = await new_identity(server)
        async with ws_client(server, creds) as ws:
            subscription = ws.subscribe(op(SUBSCRIBE, id=identity_id))
            waiting = asyncio.ensure_future(anext(subscription))
            await asyncio.sleep(0.3)
            metrics = await _scrape(f"http://127.0.0.1:{server.metrics_port}/metrics")
            assert metrics["cogsync_open_connections"][()] == 1
            assert metrics["cogsync_open_subscriptions"][()] == 1
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiting


async def test_servers_keep_their_own_registries(tmp_path: Path) -> None:
    async with (
        EmbeddedServer(tmp_path / "one") as one,
        EmbeddedServer(tmp_path / "two") as two,
    ):
        await new_identity(one)
        assert (await _scrape(one.url + "/metrics"))["cogsync_identities"][()] == 1
        assert (await _scrape(two.url + "/metrics"))["cogsync_identities"][()] == 0


def test_serve_writes_json_log_lines_with_the_access_fields(tmp_path: Path) -> None:
    import json
    import signal
    import subprocess
    import sys
    import urllib.request

    command = [
        *(sys.executable, "-m", "cogsync", "serve", "--port", "0", "--log-format", "json"),
        *("--data", str(tmp_path / "data"), "--config-out", str(tmp_path / "c.json")),
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    with process.stderr:
        first = json.loads(process.stderr.readline())
        assert first["logger"] == "cogsync.serve" and first["level"] == "info"
        url = first["message"].split()[-1]
        with urllib.request.urlopen(url + "/health?token=secret", timeout=30) as answer:
            assert answer.status == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        lines = [json.loads(line) for line in process.stderr.read().splitlines()]
    access = [line for line in lines if line["logger"] == "cogsync.access"]
    assert len(access) == 1
    assert {k: access[0][k] for k in ("method", "path", "status")} == {
        "method": "GET",
        "path": "/health",
        "status": 200,
    }
    assert "secret" not in json.dumps(lines)
    assert lines[-1]["message"] == "stopped"


async def _raw(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("name", "request_bytes"),
    [
        ("LineTooLong", b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("LineTooLong", b"POST / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n"),
        (
            "ContentEncodingError",
            b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
            b"Content-Length: 10\r\nConnection: close\r\n\r\nnot-gzip!!",
        ),
    ],
)
async def test_malformed_requests_are_answered_400_and_logged_as_one_info_line(
    server: EmbeddedServer, caplog: pytest.LogCaptureFixture, name: str, request_bytes: bytes
) -> None:
    with caplog.at_level(logging.DEBUG):
        answer = await _raw(server.port, request_bytes)
        await asyncio.sleep(0.1)
    assert answer.split(b" ", 2)[1] == b"400", answer[:300]
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert errors == [], [r.getMessage() for r in errors]
    lines = [r for r in caplog.records if name in r.getMessage()]
    assert lines, [r.getMessage() for r in caplog.records]
    assert all(r.levelno == logging.INFO and r.exc_info is None for r in lines)
    assert all("\n" not in r.getMessage() for r in lines)


def test_server_errors_stay_errors_with_their_traceback(caplog: pytest.LogCaptureFixture) -> None:
    quiet_client_faults()
    try:
        raise RuntimeError("a real server bug")
    except RuntimeError:
        logging.getLogger("aiohttp.server").exception("Error handling request from %s", "x")
    (record,) = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert record.levelno == logging.ERROR and record.exc_info is not None
