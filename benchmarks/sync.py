"""Sync benchmark against a local `cogsync serve` (run: ``python benchmarks/sync.py``).

Measures, with baselines taken in the same run:

* a device's full first sync of 20 datasets x 1,024 records x ~1 KB (the most an identity
  may hold), against the raw GraphQL pulls of the same data with gql alone and raw SQLite
  writes of the same rows;
* the re-sync of one dataset after one record changed elsewhere: time and bytes on the
  wire (requests + responses, headers included, counted by a TCP relay);
* push propagation from device A to device B (p50/p99 over 200 changes).

The server runs in its own process, as ``cogsync serve`` would. ``--profile`` prints where
a full sync spends its time (cProfile, top functions by cumulative time).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import pstats
import random
import re
import sqlite3
import statistics
import string
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from gql import Client as GqlClient
from gql import GraphQLRequest
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.appsync_auth import AppSyncIAMAuthentication

from cogsync import AsyncClient, Config, SyncResult
from cogsync.auth.cognito import CognitoIdentity
from cogsync.demo import developer_login
from cogsync.remote import operations

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "sync"))
from tcp_proxy import TcpProxy

DATASETS, RECORDS, VALUE_BYTES, CHANGES = 20, 1024, 1000, 200


def _values(dataset: int) -> dict[str, str]:
    """~1 KB of random text per record (as incompressible as real app data gets)."""
    rng = random.Random(dataset)
    alphabet = string.ascii_letters + string.digits + ' ,.:{}[]"'
    return {f"r{i:04d}": "".join(rng.choices(alphabet, k=VALUE_BYTES)) for i in range(RECORDS)}


@contextlib.asynccontextmanager
async def _server(data: Path) -> AsyncIterator[tuple[Config, dict[str, str]]]:
    code = "import sys; from cogsync.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, "serve", "--port", "0", "--data", str(data),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    drain: asyncio.Task[bytes] | None = None
    try:
        assert proc.stderr is not None
        line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
        if "listening" not in line:
            raise RuntimeError(f"cogsync serve did not start: {line!r}")
        drain = asyncio.ensure_future(proc.stderr.read())  # the access log must not block it
        config = Config.load(data / "cogsync.json")
        admin = json.loads((data / "admin.json").read_text())
        yield config, admin
    finally:
        proc.terminate()
        await proc.wait()
        if drain is not None:
            await drain


async def _raw_gql_pull(config: Config, identity: CognitoIdentity) -> float:
    """Pull every record of every dataset with gql alone (no client, no store)."""
    host = re.sub(r"^https?://", "", config.graphql_url).split("/")[0]
    auth = AppSyncIAMAuthentication(
        host=host, region_name=config.region, credentials=await identity.credentials()
    )
    transport = AIOHTTPTransport(url=config.graphql_url, auth=auth)
    started = time.perf_counter()
    async with GqlClient(transport=transport, fetch_schema_from_transport=False) as session:
        for d in range(DATASETS):
            token = None
            while True:
                variables = {"datasetName": f"ds{d:02d}", "lastSyncCount": 0, "nextToken": token}
                data = await session.execute(
                    GraphQLRequest(operations.LIST_RECORDS, variable_values=variables)
                )
                token = data["listRecords"]["nextToken"]
                if not token:
                    break
    return time.perf_counter() - started


def _raw_sqlite(path: Path) -> float:
    """Write the same rows to SQLite (one transaction per dataset, WAL, synchronous=FULL)."""
    started = time.perf_counter()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE r (ds TEXT, key TEXT, value TEXT, n INT, PRIMARY KEY (ds, key))")
    for d in range(DATASETS):
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO r VALUES (?, ?, ?, 1)",
            [(f"ds{d:02d}", k, v) for k, v in _values(d).items()],
        )
        db.execute("COMMIT")
    db.close()
    return time.perf_counter() - started


async def _fill(config: Config, logins: dict[str, str], path: Path) -> float:
    async with AsyncClient(config, db_path=path, logins=logins, device_id="writer") as a:
        started = time.perf_counter()
        for d in range(DATASETS):
            await (await a.dataset(f"ds{d:02d}")).put_all(_values(d))
        await a.synchronize_all()
        return time.perf_counter() - started


async def _full_sync(
    config: Config, logins: dict[str, str], path: Path, profile: bool
) -> tuple[float, int]:
    async with AsyncClient(config, db_path=path, logins=logins, device_id="reader") as b:
        await b.get_identity_id()
        await b.refresh_dataset_metadata()  # warm the connection and credentials
        profiler = cProfile.Profile() if profile else None
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        results = await b.synchronize_all()
        elapsed = time.perf_counter() - started
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        pulled = sum(r.pulled for r in results.values())
        return elapsed, pulled


async def _delta(
    config: Config, proxy: TcpProxy, logins: dict[str, str], a_path: Path, b_path: Path
) -> tuple[float, int, int]:
    async with (
        AsyncClient(config, db_path=a_path, logins=logins) as a,
        AsyncClient(proxy.config_for(config), db_path=b_path, logins=logins) as b,
    ):
        theirs = await b.dataset("ds07")
        await theirs.synchronize()  # connection and credentials ready
        mine = await a.dataset("ds07")
        await mine.put("r0500", _values(99)["r0500"])  # a fresh ~1 KB random value
        await mine.synchronize()
        up, down = proxy.bytes_up, proxy.bytes_down
        started = time.perf_counter()
        result = await theirs.synchronize()
        elapsed = time.perf_counter() - started
        assert result.pulled == 1
        return elapsed, proxy.bytes_up - up, proxy.bytes_down - down


async def _push(config: Config, logins: dict[str, str], tmp: Path) -> list[float]:
    latencies: list[float] = []
    arrived = asyncio.Event()

    def on_change(name: str, result: SyncResult) -> None:
        if result.pulled:
            arrived.set()

    async with (
        AsyncClient(config, db_path=tmp / "pa.db", logins=logins) as a,
        AsyncClient(config, db_path=tmp / "pb.db", logins=logins) as b,
    ):
        mine = await a.dataset("push")
        await mine.put("k", "0")
        await mine.synchronize()
        await b.dataset("push")
        await b.start_push_sync(on_change, debounce=0.0)
        await asyncio.wait_for(arrived.wait(), 10)  # the catch-up after connecting
        for i in range(1, CHANGES + 1):
            arrived.clear()
            await mine.put("k", str(i))
            await mine.synchronize()
            accepted = time.perf_counter()
            await asyncio.wait_for(arrived.wait(), 10)
            latencies.append(time.perf_counter() - accepted)
    return latencies


def _row(name: str, value: str, goal: str, baseline: str) -> str:
    return f"| {name:<44} | {value:>14} | {goal:>10} | {baseline:<36} |"


async def main(profile: bool) -> int:
    with tempfile.TemporaryDirectory(prefix="cogsync-bench-") as tmp_name:
        tmp = Path(tmp_name)
        async with _server(tmp / "server") as (config, admin):
            logins = await asyncio.to_thread(
                developer_login, config, admin["access_key_id"], admin["secret_access_key"], "u"
            )
            fill = await _fill(config, logins, tmp / "a.db")
            full, pulled = await _full_sync(config, logins, tmp / "b.db", profile)
            assert pulled == DATASETS * RECORDS, pulled
            raw_gql = await _raw_gql_pull(config, CognitoIdentity(config, logins=logins))
            raw_sql = await asyncio.to_thread(_raw_sqlite, tmp / "raw.db")
            proxy = await TcpProxy(int(config.graphql_url.split(":")[2].split("/")[0])).start()
            try:
                delta, up, down = await _delta(config, proxy, logins, tmp / "a.db", tmp / "b.db")
            finally:
                await proxy.close()
            other = await asyncio.to_thread(
                developer_login, config, admin["access_key_id"], admin["secret_access_key"], "p"
            )  # a second user: the first one holds the 20 datasets allowed
            push = sorted(await _push(config, other, tmp))
    p50 = statistics.median(push) * 1000
    p99 = push[min(len(push) - 1, int(len(push) * 0.99))] * 1000
    size_mb = DATASETS * RECORDS * (VALUE_BYTES + 5) / 1e6
    print(f"cogsync sync benchmark: {DATASETS} datasets x {RECORDS} records x ~1 KB "
          f"({size_mb:.1f} MB), server in its own process")  # fmt: skip
    print(_row("what", "measured", "goal", "baseline (same run)"))
    print(_row("-" * 44, "-" * 14, "-" * 10, "-" * 36))
    print(_row("first push of all data (device A)", f"{fill:.2f} s", "", ""))
    print(_row("full first sync (device B, synchronize_all)", f"{full:.2f} s", "< 1.5 s",
               f"gql pulls {raw_gql:.2f} s + sqlite {raw_sql:.2f} s"))  # fmt: skip
    print(_row("re-sync after one record changed", f"{delta * 1000:.1f} ms", "", ""))
    print(_row("  bytes on the wire (request + response)", f"{up} + {down} B", "< 2 KB",
               f"= {up + down} B"))  # fmt: skip
    print(_row(f"push A->B p50 ({CHANGES} changes)", f"{p50:.1f} ms", "", ""))
    print(_row(f"push A->B p99 ({CHANGES} changes)", f"{p99:.1f} ms", "< 50 ms", ""))
    goals = {"full sync": full < 1.5, "delta bytes": up + down < 2048, "push p99": p99 < 50}
    missed = [name for name, ok in goals.items() if not ok]
    print("goals missed: " + (", ".join(missed) if missed else "none"))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="store_true", help="cProfile the full sync")
    sys.exit(asyncio.run(main(parser.parse_args().profile)))
