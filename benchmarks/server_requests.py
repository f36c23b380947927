"""Server time and CPU per GraphQL request: compiled documents against graphql-core.

Run: ``python benchmarks/server_requests.py [--rounds N]``.

Starts `EmbeddedServer`s, each in its own process on 127.0.0.1: one answering the
client's documents by their compiled operations (the default), one running every
document through graphql-core (``compiled_documents=False``), and with
``--baseline-ref REF`` the server of that git ref (e.g. the code before this work, which
also gzips answers to loopback clients). All get the same requests, in interleaved
rounds (the order rotates):

* a listRecords page of 1,024 records of 1 KB (the whole of a full dataset);
* a 1 MB pushRecords rewriting those 1,024 records;
* an empty listRecords page (a delta check: nothing changed).

Values are random and incompressible, and every request body is built and signed before
its clock starts; the client is raw aiohttp (no cogsync client code). Each row gives the
median round-trip time and the median server CPU (all the server's threads, from
``/proc/PID/task/*/schedstat``) per request, and the ratios of the compiled server to
the others. The documents are the client's own (`cogsync.remote.operations`), sent
stripped as the client sends them; the client accepts gzip, as the cogsync client does.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
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

RECORDS = 1024
KEY_BYTES = 5  # "k0000"
VALUE_BYTES = 1024 - KEY_BYTES  # a full 1 MB dataset of keys and values
KINDS = ("listRecords page, 1,024 x 1 KB", "pushRecords, 1 MB", "listRecords, empty delta")


_CHILD = """
import asyncio, json, sys
from cogsync.server.runner import EmbeddedServer

async def main():
    async with EmbeddedServer(sys.argv[1], **json.loads(sys.argv[2])) as srv:
        c = srv.config
        urls = [c.graphql_url, c.identity_endpoint, c.region, c.identity_pool_id]
        print(json.dumps(urls), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


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

    def __init__(
        self, name: str, folder: Path, code: Path, kwargs: dict[str, Any] | None = None
    ) -> None:
        self.name = name
        env = {**os.environ, "PYTHONPATH": str(code)}
        self.process = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(folder / name), json.dumps(kwargs or {})],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=folder,  # not the project's root: PYTHONPATH picks the code
            text=True,
        )
        assert self.process.stdout is not None
        self.url, identity_url, self.region, pool = json.loads(self.process.stdout.readline())
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
            "POST",
            self.url,
            data=body,
            headers={"content-type": "application/json", "accept-encoding": "gzip"},
        )
        SigV4Auth(self.credentials, "appsync", self.region).add_auth(request)
        return dict(request.headers)

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(30)


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
    pid = server.process.pid
    before_cpu = _cpu_ns(pid)
    start = time.perf_counter()
    async with session.post(server.url, data=io.BytesIO(body), headers=headers) as answer:
        raw = await answer.read()
        encoding = answer.headers.get("Content-Encoding")
    elapsed = time.perf_counter() - start
    after_cpu = _cpu_ns(pid)
    if encoding is not None:  # the client's own cost, not counted
        raw = zlib.decompress(raw, wbits=zlib.MAX_WBITS | 32)
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
    shift = number % len(servers)
    order = servers[shift:] + servers[:shift]
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


def _cell(times: list[float], cpus: list[int]) -> str:
    elapsed = statistics.median(times) * 1e3
    return f"{elapsed:.1f} ({statistics.median(cpus) / 1e6:.1f})" if cpus else f"{elapsed:.1f}"


def _ratio(new: list[float] | list[int], old: list[float] | list[int]) -> str:
    return f"{statistics.median(new) / statistics.median(old):.2f}x" if new and old else "n/a"


def _table(
    servers: list[Server],
    times: dict[tuple[str, str], list[float]],
    cpus: dict[tuple[str, str], list[int]],
    rounds: int,
) -> None:
    names = [s.name for s in servers]
    fast, baselines = names[-1], names[:-1]
    print(f"\nmedians of {rounds} interleaved rounds; ms per request (server CPU ms per request)")
    ratios = [f"{fast} / {b}: time, CPU" for b in baselines]
    print(f"\n| request | {' | '.join(names)} | {' | '.join(ratios)} |")
    print("| --- " * (1 + len(names) + len(ratios)) + "|")
    for kind in KINDS:
        cells = [_cell(times[(kind, n)], cpus[(kind, n)]) for n in names]
        for base in baselines:
            time_ratio = _ratio(times[(kind, fast)], times[(kind, base)])
            cells.append(f"{time_ratio}, {_ratio(cpus[(kind, fast)], cpus[(kind, base)])}")
        print(f"| {kind} | {' | '.join(cells)} |")


def _export(ref: str, folder: Path) -> Path:
    """The project's code at git ``ref``, exported into ``folder``."""
    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", ref, "cogsync"], capture_output=True, check=True
    )
    target = folder / "baseline-code"
    target.mkdir()
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (15)")
    parser.add_argument(
        "--baseline-ref",
        metavar="REF",
        help="also run the server of this git ref (e.g. the commit before the compiled path)",
    )
    args = parser.parse_args()
    code = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        servers: list[Server] = []
        try:
            if args.baseline_ref:
                servers.append(
                    Server(args.baseline_ref, folder, _export(args.baseline_ref, folder))
                )
            servers.append(Server("graphql-core", folder, code, {"compiled_documents": False}))
            servers.append(Server("compiled", folder, code))
            asyncio.run(_run(servers, args.rounds))
        finally:
            for server in servers:
                server.stop()


if __name__ == "__main__":
    main()
