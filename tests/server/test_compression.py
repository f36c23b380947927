"""When `cogsync serve` compresses GraphQL answers (``--compression auto|always|never``)."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import aiohttp
import pytest
from server_wire import PUSH, Clock, new_identity, push, signed_headers

from cogsync.remote.operations import LIST_RECORDS
from cogsync.server.app import compresses
from cogsync.server.runner import EmbeddedServer


async def _answer(srv: EmbeddedServer) -> tuple[str | None, dict[str, object]]:
    """Push a 4 KB record, then pull it with ``Accept-Encoding: gzip``: (encoding, answer)."""
    _identity, creds = await new_identity(srv)
    pushed = push("d", "r1", {"k": "x" * 4096})
    bodies = [
        {"query": PUSH, "variables": pushed.variable_values},
        {"query": LIST_RECORDS, "variables": {"datasetName": "d", "lastSyncCount": 0}},
    ]
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        for request in bodies:
            body = json.dumps(request).encode()
            headers = signed_headers(srv, creds, body) | {"Accept-Encoding": "gzip"}
            async with session.post(
                srv.config.graphql_url, data=io.BytesIO(body), headers=headers
            ) as answer:
                raw = await answer.read()
                encoding = answer.headers.get("Content-Encoding")
    if encoding == "gzip":
        raw = gzip.decompress(raw)
    return encoding, json.loads(raw)


@pytest.mark.parametrize(
    ("compression", "expected"), [("auto", None), ("always", "gzip"), ("never", None)]
)
async def test_answers_are_compressed_as_the_setting_says(
    tmp_path: Path, compression: str, expected: str | None
) -> None:
    async with EmbeddedServer(tmp_path / "data", clock=Clock(), compression=compression) as srv:  # type: ignore[arg-type]
        encoding, answer = await _answer(srv)
    assert encoding == expected
    page = answer["data"]["listRecords"]  # type: ignore[index]
    assert page["records"][0]["value"] == "x" * 4096


def test_auto_compresses_large_answers_to_remote_peers_only() -> None:
    assert compresses("auto", 4096, "203.0.113.7")
    assert compresses("auto", 4096, "2001:db8::1")
    for loopback in ("127.0.0.1", "127.8.9.1", "::1", "::ffff:127.0.0.1"):
        assert not compresses("auto", 4096, loopback)
    assert compresses("auto", 4096, None)  # a peer the server cannot name is not loopback
    assert not compresses("auto", 1000, "203.0.113.7")  # too small to pay
    assert compresses("always", 4096, "127.0.0.1")
    assert not compresses("never", 4096, "203.0.113.7")
