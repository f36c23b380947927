"""Sync benchmark: cogsync beside its baselines, in one run (``python benchmarks/sync.py``).

Prints one table, medians of interleaved rounds, every ratio taken in the same run:

* full first sync of an identity's maximum (20 datasets x 1,024 records x 1 KB) by a new
  device, beside the Python floor (the same pages of JSON fetched with aiohttp from a tiny
  aiohttp server that serves them pre-built, stored with sqlite3 ``executemany``, no
  cogsync code), raw gql pulling the same pages from ``cogsync serve``, and the same sync
  with the code of ``--baseline-ref`` (default: 681a351, before the performance work);
* the push of the same 20 MB, the one-record delta ``dataset.synchronize``,
  ``synchronize_all`` after one change, and the bytes and requests of those on the wire (a
  TCP relay counts them) for a device on loopback (where ``auto`` compression sends plain
  answers) and for a remote one (answers compressed; also its HTTP bodies alone, without
  the request and answer headers, SigV4's among them), each beside the ``--baseline-ref``
  code;
* a full sync over a slow link (the relay throttled to 20 Mbit/s, 10 ms each way) from a
  server run with ``--compression always`` and with ``--compression never`` ("n/a" when
  the server has no such flag);
* push propagation from device A to device B (p50/p99).

The values are random (base64 of random bytes) and generated before any clock starts.
Each code version runs in its own worker process with its own ``cogsync serve`` process:
the baseline from a temporary ``git worktree`` of the ref, server and client alike.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from sync_floor import fetch_and_store, floor_pages, serve_pages

ROOT = Path(__file__).resolve().parent.parent
DATASETS, RECORDS, VALUE_CHARS, PAGE = 20, 1024, 1000, 1024
SLOW_BITS, SLOW_LATENCY = 20e6, 0.010
GOALS = {"full": 2.0, "push": 0.5, "delta": 5.0, "all": 40.0, "bytes": 1500}


def _values(dataset: int, salt: int = 0) -> dict[str, str]:
    """1,000 characters of base64 of random bytes per record (as incompressible as text)."""
    rng = random.Random(dataset * 1000 + salt)
    return {
        f"r{i:04d}": base64.b64encode(rng.randbytes(VALUE_CHARS * 3 // 4)).decode()
        for i in range(RECORDS)
    }


# ---- the worker: one code version (cogsync from PYTHONPATH) and its own server ----------------
class Worker:
    """Runs measurements against a private ``cogsync serve`` with the cogsync it imports."""

    def __init__(self, tmp: Path, profile: bool) -> None:
        self.tmp = tmp
        self.profile = profile
        self.stack = contextlib.AsyncExitStack()
        self.devices = 0

    async def start(self) -> None:
        from cogsync.demo import developer_login

        self.config, admin = await self.stack.enter_async_context(_server(self.tmp / "server"))
        self.keys = admin["access_key_id"], admin["secret_access_key"]
        self.login: Callable[..., Any] = lambda user, config=None, keys=None: asyncio.to_thread(
            developer_login, config or self.config, *(keys or self.keys), user
        )
        self.user = await self.login("u")
        self.values = [_values(d) for d in range(DATASETS)]
        self.writer = await self._client(self.config, self.user, "writer")
        await _fill(self.writer, self.values)
        self.reader = await self._client(self.config, self.user, "reader")
        await self.reader.synchronize_all()
        sys.path.insert(0, str(ROOT / "tests" / "sync"))
        from tcp_proxy import TcpProxy

        self.proxy = await TcpProxy(_port(self.config.graphql_url)).start()
        self.stack.push_async_callback(self.proxy.close)
        self.watched = await self._client(self.proxy.config_for(self.config), self.user, "wired")
        await self.watched.synchronize_all()
        self.slow: dict[str, Any] = {}
        self.remote: tuple[Any, Any, Any] | None = None
        self.edits = 0

    async def _client(self, config: Any, logins: Any, device: str) -> Any:
        from cogsync import AsyncClient

        self.devices += 1
        path = self.tmp / f"{device}-{self.devices}.db"
        client = AsyncClient(config, db_path=path, logins=logins, device_id=device)
        await self.stack.enter_async_context(client)
        await client.get_identity_id()
        return client

    async def _fresh_sync(self, config: Any, logins: Any) -> float:
        """A new device's first `synchronize_all` (connection and credentials warmed)."""
        from cogsync import AsyncClient

        self.devices += 1
        path = self.tmp / f"fresh-{self.devices}.db"
        async with AsyncClient(config, db_path=path, logins=logins, device_id="new") as b:
            await b.get_identity_id()
            await b.refresh_dataset_metadata()
            profiler = _profiler(self.profile)
            started, cpu = time.perf_counter(), time.process_time()
            results = await b.synchronize_all()
            elapsed = time.perf_counter() - started
            self.cpu = time.process_time() - cpu
            if profiler is not None:
                profiler.disable()
                _print_profile(profiler)
        assert sum(r.pulled for r in results.values()) == DATASETS * RECORDS
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{path}{suffix}")
        return elapsed

    async def _edit(self, name: str, writer: Any = None) -> None:
        """Another device (``writer``, by default the first) changes one record of ``name``
        and syncs it."""
        self.edits += 1
        value = base64.b64encode(random.Random(-self.edits).randbytes(750)).decode()
        mine = await (writer or self.writer).dataset(name)
        await mine.put("r0500", value)
        await mine.synchronize()

    async def run(self, command: dict[str, Any]) -> dict[str, Any]:
        kind = command["cmd"]
        if kind == "full":
            return {"s": await self._fresh_sync(self.config, self.user), "cpu": self.cpu}
        if kind == "push":
            from cogsync import AsyncClient

            logins = await self.login(f"push{command['round']}")
            path = self.tmp / f"push-{command['round']}.db"
            async with AsyncClient(self.config, db_path=path, logins=logins) as a:
                await a.get_identity_id()
                await _fill(a, self.values, timed=False)
                started, cpu = time.perf_counter(), time.process_time()
                await a.synchronize_all()
                return {"s": time.perf_counter() - started, "cpu": time.process_time() - cpu}
        if kind == "gql":
            return {"s": await _raw_gql_pull(self.config, self.user)}
        if kind in ("delta", "all"):
            times = []
            for _ in range(command["n"]):
                await self._edit("ds07")
                theirs = await self.reader.dataset("ds07")
                started = time.perf_counter()
                if kind == "delta":
                    result = await theirs.synchronize()
                    assert result.pulled == 1, result
                else:
                    await self.reader.synchronize_all()
                times.append(time.perf_counter() - started)
            return {"ms": statistics.median(times) * 1000}
        if kind == "wire":
            return await self._wire()
        if kind == "slow":
            return await self._slow(command["compression"])
        if kind == "propagation":
            return await self._propagation(command["n"])
        raise ValueError(f"unknown command {kind!r}")

    async def _wire(self) -> dict[str, Any]:
        """Bytes and requests of a one-record delta and of ``synchronize_all``, as seen by a
        device on loopback (``auto`` compression sends plain answers there) and by a remote
        device (the answers compressed, as ``auto`` does for every other peer)."""
        answer = await self._wire_on(self.writer, self.watched, self.proxy, "")
        if self.remote is None:
            self.remote = await self._remote_setup()
        return answer | await self._wire_on(*self.remote, "remote_")

    async def _wire_on(self, writer: Any, watched: Any, proxy: Any, prefix: str) -> dict[str, Any]:
        answer = {}
        for kind in ("delta", "all"):
            await self._edit("ds07", writer)
            up, down, asked = proxy.bytes_up, proxy.bytes_down, len(proxy.requests)
            if kind == "delta":
                await (await watched.dataset("ds07")).synchronize()
            else:
                await watched.synchronize_all()
            answer[f"{prefix}{kind}_bytes"] = proxy.bytes_up - up + proxy.bytes_down - down
            answer[f"{prefix}{kind}_requests"] = len(proxy.requests) - asked
            heads = sum(map(_head_size, proxy.requests[asked:] + proxy.answers[asked:]))
            answer[f"{prefix}{kind}_body_bytes"] = answer[f"{prefix}{kind}_bytes"] - heads
        return answer

    async def _remote_setup(self) -> tuple[Any, Any, Any]:
        """A server that compresses every answer a client accepts compressed (what ``auto``
        gives a remote device; code without ``--compression`` always did), the same data,
        and a device that reaches it through a byte-counting relay."""
        data = self.tmp / "server-remote"
        try:
            server = _server(data, "--compression", "always")
            config, admin = await self.stack.enter_async_context(server)
        except RuntimeError:  # code from before --compression: it always compresses
            config, admin = await self.stack.enter_async_context(_server(data))
        keys = admin["access_key_id"], admin["secret_access_key"]
        logins = await self.login("u", config, keys)
        writer = await self._client(config, logins, "remote-writer")
        await _fill(writer, self.values)
        from tcp_proxy import TcpProxy

        proxy = await TcpProxy(_port(config.graphql_url)).start()
        self.stack.push_async_callback(proxy.close)
        watched = await self._client(proxy.config_for(config), logins, "remote-wired")
        await watched.synchronize_all()
        return writer, watched, proxy

    async def _slow(self, compression: str) -> dict[str, Any]:
        if compression not in self.slow:
            try:
                config, admin = await self.stack.enter_async_context(
                    _server(self.tmp / f"server-{compression}", "--compression", compression)
                )
            except RuntimeError as exc:
                self.slow[compression] = str(exc)
            else:
                keys = admin["access_key_id"], admin["secret_access_key"]
                logins = await self.login("u", config, keys)
                writer = await self._client(config, logins, f"slow-{compression}")
                await _fill(writer, self.values)
                from tcp_proxy import TcpProxy

                proxy = await TcpProxy(_port(config.graphql_url)).start()
                self.stack.push_async_callback(proxy.close)
                proxy.throttle(SLOW_BITS, SLOW_LATENCY)
                self.slow[compression] = (proxy.config_for(config), logins)
        setup = self.slow[compression]
        if isinstance(setup, str):
            return {"na": setup}
        return {"s": await self._fresh_sync(*setup)}

    async def _propagation(self, changes: int) -> dict[str, Any]:
        from cogsync import SyncResult

        arrived = asyncio.Event()

        def on_change(name: str, result: SyncResult) -> None:
            if result.pulled:
                arrived.set()

        other = await self.login("p")  # the first user holds the 20 datasets allowed
        a = await self._client(self.config, other, "pa")
        b = await self._client(self.config, other, "pb")
        mine = await a.dataset("push")
        await mine.put("k", "0")
        await mine.synchronize()
        await b.dataset("push")
        await b.start_push_sync(on_change, debounce=0.0)
        await asyncio.wait_for(arrived.wait(), 10)  # the catch-up after connecting
        latencies = []
        for i in range(1, changes + 1):
            arrived.clear()
            await mine.put("k", str(i))
            await mine.synchronize()
            accepted = time.perf_counter()
            await asyncio.wait_for(arrived.wait(), 10)
            latencies.append(time.perf_counter() - accepted)
        await b.stop_push_sync()
        latencies.sort()
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        return {"p50": statistics.median(latencies) * 1000, "p99": p99 * 1000}


def _profiler(enabled: bool) -> Any:
    if not enabled:
        return None
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    return profiler


def _print_profile(profiler: Any) -> None:
    import io
    import pstats

    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
    print(out.getvalue(), file=sys.stderr)


async def _fill(client: Any, values: list[dict[str, str]], timed: bool = True) -> None:
    for d, records in enumerate(values):
        await (await client.dataset(f"ds{d:02d}")).put_all(records)
    if timed:
        await client.synchronize_all()


def _head_size(message: bytes) -> int:
    """Bytes of an HTTP message's start line and headers (``message`` holds them whole)."""
    end = message.find(b"\r\n\r\n")
    if end < 0:
        raise ValueError("an HTTP message without the end of its headers")
    return end + 4


def _port(url: str) -> int:
    return int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])


@contextlib.asynccontextmanager
async def _server(data: Path, *flags: str) -> AsyncIterator[tuple[Any, dict[str, str]]]:
    """``cogsync serve`` in its own process (with the cogsync on PYTHONPATH)."""
    import cogsync
    from cogsync import Config

    code = "import sys; from cogsync.cli import main; sys.exit(main(sys.argv[1:]))"
    tree = Path(cogsync.__file__).resolve().parent.parent  # -c imports from the cwd first
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, "serve", "--port", "0", "--data", str(data), *flags,
        stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, cwd=tree,
    )  # fmt: skip
    drain: asyncio.Task[bytes] | None = None
    try:
        assert proc.stderr is not None
        line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
        if "listening" not in line:
            rest = (await proc.stderr.read()).decode()
            raise RuntimeError(f"cogsync serve {' '.join(flags)} refused: {line}{rest}".strip())
        drain = asyncio.ensure_future(proc.stderr.read())  # the access log must not block it
        yield Config.load(data / "cogsync.json"), json.loads((data / "admin.json").read_text())
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()
        if drain is not None:
            await drain


async def _raw_gql_pull(config: Any, logins: Any) -> float:
    """Pull every record of every dataset with gql alone (no cogsync client, no store)."""
    from gql import Client, GraphQLRequest
    from gql.transport.aiohttp import AIOHTTPTransport
    from gql.transport.appsync_auth import AppSyncIAMAuthentication

    from cogsync.auth.cognito import CognitoIdentity
    from cogsync.remote import operations

    credentials = await CognitoIdentity(config, logins=logins).credentials()
    host = config.graphql_url.split("://", 1)[1].split("/", 1)[0]
    auth = AppSyncIAMAuthentication(host=host, region_name=config.region, credentials=credentials)
    transport = AIOHTTPTransport(url=config.graphql_url, auth=auth)
    async with Client(transport=transport, fetch_schema_from_transport=False) as session:
        request = GraphQLRequest(operations.SERVER_INFO)
        await session.execute(request)  # the connection is open before the clock starts
        started = time.perf_counter()
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


async def _worker_main(profile: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="cogsync-bench-") as tmp:
        worker = Worker(Path(tmp), profile)
        async with worker.stack:
            await worker.start()
            print(json.dumps({"ready": True}), flush=True)
            loop = asyncio.get_running_loop()
            while line := await loop.run_in_executor(None, sys.stdin.readline):
                command = json.loads(line)
                if command["cmd"] == "quit":
                    break
                print(json.dumps(await worker.run(command)), flush=True)


# ---- the driver: interleaved rounds over the workers, one table ---------------------------------
class _Process:
    """A worker process spoken to with JSON lines."""

    def __init__(self, name: str, tree: Path, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=tree, text=True,
        )  # fmt: skip

    def ask(self, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if command:
            self.proc.stdin.write(json.dumps(command) + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.name} worker ended (exit {self.proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.close()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@contextlib.contextmanager
def _baseline_tree(ref: str, tmp: Path) -> Any:
    tree = tmp / "baseline"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(tree), ref],
        check=True,
    )
    try:
        yield tree
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False
        )


def _median(samples: list[float]) -> float | None:
    return statistics.median(samples) if samples else None


def main(rounds: int, ref: str | None, profile: bool, slow_rounds: int) -> int:
    samples: dict[str, list[float]] = {}
    notes: dict[str, str] = {}

    def add(key: str, answer: dict[str, Any], field: str) -> None:
        if "na" in answer:
            notes[key] = answer["na"]
        else:
            samples.setdefault(key, []).append(answer[field])
            print(f"  {key} {answer[field]:.4g}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="cogsync-bench-") as tmp_name:
        tmp = Path(tmp_name)
        with contextlib.ExitStack() as stack:
            floor = _Process("floor", ROOT, "--floor-server")
            stack.callback(floor.close)
            floor_port = floor.ask()["port"]
            flags = ["--profile"] if profile else []
            workers = {"cogsync": _Process("cogsync", ROOT, "--worker", *flags)}
            stack.callback(workers["cogsync"].close)
            if ref:
                tree = stack.enter_context(_baseline_tree(ref, tmp))
                workers["baseline"] = _Process("baseline", tree, "--worker")
                stack.callback(workers["baseline"].close)
            for worker in workers.values():
                worker.ask()  # ready: server up, data pushed, readers synced
            for r in range(rounds):
                print(f"round {r + 1}/{rounds}", file=sys.stderr, flush=True)
                order = list(workers.items())
                if r % 2:
                    order.reverse()
                samples.setdefault("floor", []).append(
                    asyncio.run(fetch_and_store(floor_port, tmp / "floor.db", DATASETS))
                )
                add("gql", workers["cogsync"].ask(cmd="gql"), "s")
                for name, worker in order:
                    answer = worker.ask(cmd="full")
                    add(f"{name}.full", answer, "s")
                    add(f"{name}.full_cpu", answer, "cpu")
                for name, worker in order:
                    answer = worker.ask(cmd="push", round=r)
                    add(f"{name}.push", answer, "s")
                    add(f"{name}.push_cpu", answer, "cpu")
                for name, worker in order:
                    add(f"{name}.delta", worker.ask(cmd="delta", n=20), "ms")
                for name, worker in order:
                    add(f"{name}.all", worker.ask(cmd="all", n=10), "ms")
                for name, worker in order:
                    wire = worker.ask(cmd="wire")
                    for field in wire:
                        add(f"{name}.{field}", wire, field)
                if r < slow_rounds:
                    for compression in ("always", "never"):
                        answer = workers["cogsync"].ask(cmd="slow", compression=compression)
                        add(f"slow.{compression}", answer, "s")
            for name, worker in workers.items():
                answer = worker.ask(cmd="propagation", n=100)
                add(f"{name}.p50", answer, "p50")
                add(f"{name}.p99", answer, "p99")
    _print_table({k: _median(v) for k, v in samples.items()}, notes, ref, rounds)
    return 0


def _print_table(
    m: dict[str, float | None], notes: dict[str, str], ref: str | None, rounds: int
) -> None:
    def num(key: str, unit: str, scale: float = 1.0, digits: int = 2) -> str:
        value = m.get(key)
        return "n/a" if value is None else f"{value * scale:.{digits}f} {unit}".strip()

    def ratio(a: str, b: str) -> str:
        x, y = m.get(a), m.get(b)
        return "n/a" if x is None or not y else f"{x / y:.2f}x"

    base = f"baseline {ref}" if ref else "baseline"
    header = ("measure", "floor", "raw gql", base, "cogsync", "cogsync vs", "goal")
    rows = [
        ("full first sync 20 x 1,024 x 1 KB", num("floor", "s"), num("gql", "s"),
         num("baseline.full", "s"), num("cogsync.full", "s"),
         f"{ratio('cogsync.full', 'floor')} floor", f"<= {GOALS['full']:.0f}x floor"),
        ("  client CPU (worker process)", "", "", num("baseline.full_cpu", "s"),
         num("cogsync.full_cpu", "s"), ratio("cogsync.full_cpu", "baseline.full_cpu"), ""),
        ("push of the same 20 MB", "", "", num("baseline.push", "s"), num("cogsync.push", "s"),
         f"{ratio('cogsync.push', 'baseline.push')} baseline", f"<= {GOALS['push']}x baseline"),
        ("  client CPU (worker process)", "", "", num("baseline.push_cpu", "s"),
         num("cogsync.push_cpu", "s"), ratio("cogsync.push_cpu", "baseline.push_cpu"), ""),
        ("one-record delta, dataset.synchronize", "", "", num("baseline.delta", "ms", digits=1),
         num("cogsync.delta", "ms", digits=1), ratio("cogsync.delta", "baseline.delta"),
         f"<= {GOALS['delta']:.0f} ms"),
        ("synchronize_all after one change", "", "", num("baseline.all", "ms", digits=1),
         num("cogsync.all", "ms", digits=1), ratio("cogsync.all", "baseline.all"),
         f"<= {GOALS['all']:.0f} ms"),
        ("  requests it sends", "", "", num("baseline.all_requests", "", digits=0),
         num("cogsync.all_requests", "", digits=0), "", ""),
        ("bytes on the wire, one-record delta:", "", "", "", "", "", ""),
        ("  remote device (answers compressed)", "", "",
         num("baseline.remote_delta_bytes", "B", digits=0),
         num("cogsync.remote_delta_bytes", "B", digits=0),
         ratio("cogsync.remote_delta_bytes", "baseline.remote_delta_bytes"),
         f"<= {GOALS['bytes']} B"),
        ("    of which HTTP bodies (request + answer)", "", "",
         num("baseline.remote_delta_body_bytes", "B", digits=0),
         num("cogsync.remote_delta_body_bytes", "B", digits=0),
         ratio("cogsync.remote_delta_body_bytes", "baseline.remote_delta_body_bytes"), ""),
        ("  loopback device (auto: plain answers)", "", "",
         num("baseline.delta_bytes", "B", digits=0),
         num("cogsync.delta_bytes", "B", digits=0),
         ratio("cogsync.delta_bytes", "baseline.delta_bytes"), ""),
        ("bytes on the wire, synchronize_all:", "", "", "", "", "", ""),
        ("  remote device", "", "", num("baseline.remote_all_bytes", "B", digits=0),
         num("cogsync.remote_all_bytes", "B", digits=0),
         ratio("cogsync.remote_all_bytes", "baseline.remote_all_bytes"), ""),
        ("  loopback device", "", "", num("baseline.all_bytes", "B", digits=0),
         num("cogsync.all_bytes", "B", digits=0), "", ""),
        (f"slow link {SLOW_BITS / 1e6:.0f} Mbit/s {SLOW_LATENCY * 1000:.0f} ms: full sync,",
         "", "", "", "", "", ""),
        ("  serve --compression always", "", "", "", num("slow.always", "s"),
         ratio("slow.always", "slow.never") + " never" if m.get("slow.never") else "", ""),
        ("  serve --compression never", "", "", "", num("slow.never", "s"), "", ""),
        ("push propagation A->B p50 (100 changes)", "", "", num("baseline.p50", "ms", digits=1),
         num("cogsync.p50", "ms", digits=1), "", ""),
        ("push propagation A->B p99", "", "", num("baseline.p99", "ms", digits=1),
         num("cogsync.p99", "ms", digits=1), "", ""),
    ]  # fmt: skip
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print(f"cogsync sync benchmark: medians of {rounds} interleaved rounds; "
          f"{DATASETS} x {RECORDS} records x {VALUE_CHARS} chars of random base64")  # fmt: skip
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    for key, note in notes.items():
        print(f"{key}: n/a ({note.splitlines()[-1] if note else ''})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument(
        "--baseline-ref",
        default="681a351",
        help="git ref whose code (client and server) is measured beside this one; "
        "'none' skips it (default: 681a351, before the performance work)",
    )
    parser.add_argument("--slow-rounds", type=int, default=2, help="rounds of the slow link")
    parser.add_argument("--profile", action="store_true", help="cProfile cogsync's full syncs")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--floor-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(_worker_main(args.profile))
    elif args.floor_server:
        asyncio.run(serve_pages(floor_pages([_values(d) for d in range(DATASETS)])))
    else:
        ref = None if args.baseline_ref.lower() == "none" else args.baseline_ref
        sys.exit(main(args.rounds, ref, args.profile, args.slow_rounds))
