"""Server time and CPU per GraphQL request: compiled documents against graphql-core.

Run: ``python benchmarks/server_requests.py [--rounds N]``.

Starts two `EmbeddedServer`s, each in its own process on 127.0.0.1: one answering the
client's documents by their compiled operations (the default), one running every
document through graphql-core (``compiled_documents=False``, the code before the compiled
path). Both get the same requests, in interleaved rounds (the order alternates):

* a listRecords page of 1,024 records of 1 KB (the whole of a full dataset);
* a 1 MB pushRecords rewriting those 1,024 records;
* an empty listRecords page (a delta check: nothing changed).

Values are random and incompressible, and every request body is built and signed before
its clock starts; the client is raw aiohttp (no cogsync client code). Each row gives the
median round-trip time and the median server CPU (all the server's threads, from
``/proc/PID/task/*/schedstat``) per request, and the ratio compiled / graphql-core.
The documents are the client's own (`cogsync.remote.operations`), sent stripped as the
client sends them. Answers are not compressed (loopback).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from graphql import strip_ignored_characters

from cogsync.models import PROTOCOL_VERSION
from cogsync.remote.operations import LIST_RECORDS, PUSH_RECORDS
from cogsync.server.runner import EmbeddedServer

RECORDS = 1024
KEY_BYTES = 5  # "k0000"
VALUE_BYTES = 1024 - KEY_BYTES  # a full 1 MB dataset of keys and values
KINDS = ("listRecords page, 1,024 x 1 KB", "pushRecords, 1 MB", "listRecords, empty delta")


def _serve(data_dir: str, compiled: bool, conn: Connection) -> None:
    """The server process: start, report its config, serve until told to stop."""

    async def main() -> None:
        async with EmbeddedServer(
            data_dir, compiled_documents=compiled, compression="never"
        ) as srv:
            config = srv.config
            conn.send(
                (
                    config.graphql_url,
                    config.identity_endpoint,
                    config.region,
                    config.identity_pool_id,
                )
            )
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)

    asyncio.run(main())


def _cpu_ns(pid: int) -> int | None:
    """CPU time of all threads of ``pid`` in ns (None where schedstat is missing)."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as handle:
                total += int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total


class Server:
    """One server process and a signed client for one identity on it."""

    def __init__(self, name: str, compiled: bool, folder: Path) -> None:
        self.name = name
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(str(folder / name), compiled, child), daemon=True
        )
        self.process.start()
        self.url, identity_url, self.region, pool = self._conn.recv()
        client = boto3.client(
            "cognito-identity",
            endpoint_url=identity_url,
            region_name=self.region,
            aws_access_key_id="unused",
            aws_secret_access_key="unused",
        )
        identity = client.get_id(IdentityPoolId=pool)["IdentityId"]
        creds = client.get_credentials_for_identity(IdentityId=identity)["Credentials"]
        self.credentials = Credentials(
            creds["AccessKeyId"], creds["SecretKey"], creds["SessionToken"]
        )
        self.sync_count = 0

    def signed(self, body: bytes) -> dict[str, str]:
        request = AWSRequest(
            "POST", self.url, data=body, headers={"content-type": "application/json"}
        )
        SigV4Auth(self.credentials, "appsync", self.region).add_auth(request)
        return dict(request.headers)

    def stop(self) -> None:
        self._conn.send("stop")
        self.process.join(30)


def _body(query: str, variables: dict[str, Any]) -> bytes:
    return json.dumps({"query": strip_ignored_characters(query), "variables": variables}).encode()


def _push_body(values: list[str], sync_count: int, request_id: str) -> bytes:
    records = [
        {
            "op": "REPLACE",
            "key": f"k{i:04d}",
            "value": value,
            "syncCount": sync_count,
            "deviceLastModifiedDate": "2024-05-01T12:00:00.000Z",
        }
        for i, value in enumerate(values)
    ]
    variables = {
        "input": {
            "datasetName": "bench",
            "clientRequestId": request_id,
            "deviceId": "bench-device",
            "protocolVersion": PROTOCOL_VERSION,
            "records": records,
        }
    }
    return _body(PUSH_RECORDS, variables)


def _random_values() -> list[str]:
    raw = (VALUE_BYTES * 3) // 4
    return [base64.b64encode(os.urandom(raw)).decode()[:VALUE_BYTES] for _ in range(RECORDS)]


async def _post(
    session: aiohttp.ClientSession, server: Server, body: bytes
) -> tuple[float, int | None, dict[str, Any]]:
    """POST a signed body: (seconds, server CPU ns or None, answer)."""
    headers = server.signed(body)
    pid = server.process.pid or 0
    before_cpu = _cpu_ns(pid)
    start = time.perf_counter()
    async with session.post(server.url, data=io.BytesIO(body), headers=headers) as answer:
        raw = await answer.read()
    elapsed = time.perf_counter() - start
    after_cpu = _cpu_ns(pid)
    cpu = after_cpu - before_cpu if before_cpu is not None and after_cpu is not None else None
    data: dict[str, Any] = json.loads(raw)
    if data.get("errors"):
        raise RuntimeError(f"{server.name}: {data['errors'][0]}")
    return elapsed, cpu, data


async def _round(
    session: aiohttp.ClientSession,
    servers: list[Server],
    number: int,
    times: dict[tuple[str, str], list[float]],
    cpus: dict[tuple[str, str], list[int]],
) -> None:
    order = servers if number % 2 == 0 else servers[::-1]
    for kind in KINDS:
        for server in order:
            if kind.startswith("push"):
                body = _push_body(_random_values(), server.sync_count, f"bench-{number}")
            else:
                since = server.sync_count if "empty" in kind else 0
                body = _body(LIST_RECORDS, {"datasetName": "bench", "lastSyncCount": since})
            elapsed, cpu, data = await _post(session, server, body)
            if kind.startswith("push"):
                server.sync_count = data["data"]["pushRecords"]["syncCount"]
            elif "page" in kind:
                assert len(data["data"]["listRecords"]["records"]) == RECORDS
            times[(kind, server.name)].append(elapsed)
            if cpu is not None:
                cpus[(kind, server.name)].append(cpu)


async def _run(servers: list[Server], rounds: int) -> None:
    times: dict[tuple[str, str], list[float]] = {(k, s.name): [] for k in KINDS for s in servers}
    cpus: dict[tuple[str, str], list[int]] = {(k, s.name): [] for k in KINDS for s in servers}
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        for server in servers:  # the dataset both pages read
            body = _push_body(_random_values(), 0, "seed")
            _, _, data = await _post(session, server, body)
            server.sync_count = data["data"]["pushRecords"]["syncCount"]
        for number in range(rounds + 1):
            if number == 0:  # warm-up round, not counted
                await _round(
                    session, servers, number, {k: [] for k in times}, {k: [] for k in cpus}
                )
            else:
                await _round(session, servers, number, times, cpus)
    _table(servers, times, cpus, rounds)


def _median_ms(values: list[float] | list[int], scale: float) -> float | None:
    return statistics.median(values) * scale if values else None


def _table(
    servers: list[Server],
    times: dict[tuple[str, str], list[float]],
    cpus: dict[tuple[str, str], list[int]],
    rounds: int,
) -> None:
    core, compiled = (s.name for s in servers)
    print(f"\nmedians of {rounds} interleaved rounds; ms per request (server CPU ms per request)\n")
    print(f"| request | {core} | {compiled} | time ratio | CPU ratio |")
    print("| --- | --- | --- | --- | --- |")
    for kind in KINDS:
        t_core = _median_ms(times[(kind, core)], 1e3)
        t_fast = _median_ms(times[(kind, compiled)], 1e3)
        c_core = _median_ms(cpus[(kind, core)], 1e-6)
        c_fast = _median_ms(cpus[(kind, compiled)], 1e-6)
        assert t_core is not None and t_fast is not None
        cells = [f"{t_core:.1f}", f"{t_fast:.1f}"]
        if c_core is not None and c_fast is not None:
            cells = [f"{t_core:.1f} ({c_core:.1f})", f"{t_fast:.1f} ({c_fast:.1f})"]
            cpu_ratio = f"{c_fast / c_core:.2f}x"
        else:
            cpu_ratio = "n/a"
        print(f"| {kind} | {cells[0]} | {cells[1]} | {t_fast / t_core:.2f}x | {cpu_ratio} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (15)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        servers = [
            Server("graphql-core", False, Path(folder)),
            Server("compiled", True, Path(folder)),
        ]
        try:
            asyncio.run(_run(servers, args.rounds))
        finally:
            for server in servers:
                server.stop()


if __name__ == "__main__":
    main()
