"""`cogsync serve` under load: real-time fan-out, notify latency, CPU and memory (run:
``python benchmarks/load.py``; ``--quick`` for a short run).

One asyncio process drives a real ``cogsync serve`` subprocess (its own ``--data``
directory, port 0): it creates guest identities through the server's Cognito Identity
API, opens one real-time WebSocket and one ``onDatasetChanged`` subscription per identity
(AppSync's protocol, SigV4-signed), then sends SigV4-signed ``pushRecords`` (the client's
own document) spread round-robin over the identities at a target rate. Each push adds one
new record, so none conflicts. Per step it prints the pushes/s achieved, the notify
latency (push sent -> its subscriber's ``data`` event) p50/p99, events lost (acknowledged
pushes whose event never came), the server's CPU (``/proc/<pid>/stat``, all threads) per
second and per push, and its RSS.

Steps (``--step SUBSCRIBERSxRATE``, repeatable; default ``1000x500`` and ``10000x50``) run
on a fresh server each, and a leak step sends ``--leak-events`` events to 1,000
subscribers and compares the server's RSS after the first tenth with the RSS at the end.
Every step runs first against the code of ``--baseline-ref`` (a ``git archive`` of that
commit, default the code before this benchmark) and then against the working tree, so the
ratios come from the same run. Signing uses SigV4 signing keys derived once per identity
(the HMAC chain of date, region and service), so a signature costs two SHA-256 and one
HMAC on the client.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import hashlib
import hmac
import io
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from cogsync import Config
from cogsync.remote.operations import ON_DATASET_CHANGED, PUSH_RECORDS

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BASELINE = "681a351"
TICK = os.sysconf("SC_CLK_TCK")
_SIGNED = "content-type;host;x-amz-date;x-amz-security-token"
_JSON = "application/json"


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to the hard limit (the server inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


@dataclass
class Signer:
    """SigV4 (``appsync``) for one identity's temporary credentials, keys derived once a day."""

    identity_id: str
    access_key: str
    secret: str
    token: str
    region: str
    host: str
    _keys: dict[str, bytes] = field(default_factory=dict)

    def headers(self, path: str, body: bytes) -> dict[str, str]:
        """The signed headers of ``POST path`` with ``body``."""
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        day = amz_date[:8]
        key = self._keys.get(day)
        if key is None:
            key = _hmac(f"AWS4{self.secret}".encode(), day)
            for part in (self.region, "appsync", "aws4_request"):
                key = _hmac(key, part)
            self._keys = {day: key}
        scope = f"{day}/{self.region}/appsync/aws4_request"
        canonical = (
            f"POST\n{path}\n\ncontent-type:{_JSON}\nhost:{self.host}\nx-amz-date:{amz_date}\n"
            f"x-amz-security-token:{self.token}\n\n{_SIGNED}\n" + hashlib.sha256(body).hexdigest()
        )
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        signature = _hmac(key, f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{digest}").hex()
        return {
            "content-type": _JSON,
            "host": self.host,
            "x-amz-date": amz_date,
            "x-amz-security-token": self.token,
            "Authorization": (
                f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
                f"SignedHeaders={_SIGNED}, Signature={signature}"
            ),
        }


@dataclass
class Server:
    """A ``cogsync serve`` subprocess and what its files say."""

    process: subprocess.Popen[str]
    config: Config

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime, all threads

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(code: Path, data: Path) -> Server:
    out = data.parent / f"{data.name}.json"
    command = [sys.executable, "-m", "cogsync.cli", "serve", "--port", "0", "--data", str(data)]
    command += ["--config-out", str(out), "--max-connections", "30000", "--log-level", "warning"]
    env = {**os.environ, "PYTHONPATH": str(code)}
    # ``-m`` puts the working directory first on sys.path: run from the code's own tree, or
    # a benchmark started from the repository would serve its cogsync for every label
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env, cwd=code)
    assert process.stderr is not None
    deadline = time.monotonic() + 60
    while not out.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start: {process.stderr.read()}")
        time.sleep(0.05)
    time.sleep(0.2)  # the config file is written whole; let the listener settle
    threading.Thread(target=process.stderr.read, daemon=True).start()  # keep draining
    return Server(process, Config.load(out))


async def new_identity(session: aiohttp.ClientSession, config: Config) -> Signer:
    """A guest identity and its credentials, from the server's Cognito Identity API."""
    assert config.identity_endpoint is not None

    async def call(target: str, params: dict[str, str]) -> dict[str, object]:
        headers = {
            "X-Amz-Target": f"AWSCognitoIdentityService.{target}",
            "Content-Type": "application/x-amz-json-1.1",
        }
        url = config.identity_endpoint
        assert url is not None
        async with session.post(url, data=json.dumps(params), headers=headers) as response:
            answer: dict[str, object] = await response.json(content_type=None)
            if response.status != 200:
                raise RuntimeError(f"{target}: {answer}")
            return answer

    identity_id = str(
        (await call("GetId", {"IdentityPoolId": config.identity_pool_id}))["IdentityId"]
    )
    creds = (await call("GetCredentialsForIdentity", {"IdentityId": identity_id}))["Credentials"]
    assert isinstance(creds, dict)
    host = urlsplit(config.graphql_url).netloc
    return Signer(
        identity_id,
        creds["AccessKeyId"],
        creds["SecretKey"],
        creds["SessionToken"],
        config.region,
        host,
    )


@dataclass
class Tally:
    """What one step measured."""

    sent: dict[str, deque[float]] = field(default_factory=dict)  # identity -> send times
    latencies: list[float] = field(default_factory=list)
    acknowledged: int = 0
    failed: int = 0
    unexpected: int = 0

    def event(self, identity_id: str) -> None:
        pending = self.sent.get(identity_id)
        if pending:
            self.latencies.append(time.perf_counter() - pending.popleft())
        else:
            self.unexpected += 1

    @property
    def waiting(self) -> int:
        return sum(len(p) for p in self.sent.values())


class Subscriber:
    """One identity's WebSocket with one ``onDatasetChanged`` subscription."""

    def __init__(self, signer: Signer, tally: Tally) -> None:
        self.signer, self.tally = signer, tally
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task[None] | None = None

    async def open(self, session: aiohttp.ClientSession, config: Config) -> None:
        auth = self.signer.headers("/graphql/connect", b"{}")
        header = base64.urlsafe_b64encode(json.dumps(auth).encode()).decode().rstrip("=")
        ws = await session.ws_connect(
            config.realtime_url, protocols=("graphql-ws", f"header-{header}"), autoping=True
        )
        self.ws = ws
        await ws.send_str('{"type":"connection_init"}')
        await self._expect(ws, "connection_ack")
        data = json.dumps(
            {"query": ON_DATASET_CHANGED, "variables": {"identityId": self.signer.identity_id}}
        )
        authorization = self.signer.headers("/graphql", data.encode())
        payload = {"data": data, "extensions": {"authorization": authorization}}
        await ws.send_str(json.dumps({"id": "1", "type": "start", "payload": payload}))
        await self._expect(ws, "start_ack")
        self.reader = asyncio.create_task(self._read(ws))

    @staticmethod
    async def _expect(ws: aiohttp.ClientWebSocketResponse, kind: str) -> None:
        while True:
            message = await ws.receive(timeout=120)
            if message.type != aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"socket ended waiting for {kind}: {message}")
            got = json.loads(message.data)["type"]
            if got == kind:
                return
            if got != "ka":
                raise RuntimeError(f"expected {kind}, got {message.data[:300]}")

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        identity_id = self.signer.identity_id
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT and message.data.startswith('{"type":"data"'):
                self.tally.event(identity_id)

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        if self.ws is not None:
            await self.ws.close()


async def gather_limited(coros: list, limit: int) -> list:  # type: ignore[type-arg]
    """Await ``coros`` with at most ``limit`` running at once, in order."""
    semaphore = asyncio.Semaphore(limit)

    async def one(coro):  # type: ignore[no-untyped-def]
        async with semaphore:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros))


@dataclass
class StepResult:
    server: str
    step: str
    target: float
    achieved: float
    p50_ms: float
    p99_ms: float
    lost: int
    failed: int
    cpu_percent: float
    cpu_ms_per_push: float
    rss_mb: float
    setup_s: float
    client_cpu_percent: float
    rss_warm_mb: float | None = None


class Driver:
    """Identities, subscriptions and pushes against one server."""

    def __init__(self, server: Server, session: aiohttp.ClientSession) -> None:
        self.server, self.session = server, session
        self.tally = Tally()
        self.subscribers: list[Subscriber] = []
        self.counters: dict[str, int] = {}
        self.pushes = 0  # every push of the step gets its own client request id
        self.graphql_url = server.config.graphql_url

    async def connect(self, count: int) -> None:
        config = self.server.config
        signers = await gather_limited(
            [new_identity(self.session, config) for _ in range(count)], 32
        )
        self.subscribers = [Subscriber(s, self.tally) for s in signers]
        await gather_limited([s.open(self.session, config) for s in self.subscribers], 64)
        for s in signers:
            self.tally.sent[s.identity_id] = deque()

    async def push(self, signer: Signer) -> None:
        number = self.pushes = self.pushes + 1
        n = self.counters.get(signer.identity_id, 0)
        self.counters[signer.identity_id] = n + 1
        variables = {
            "input": {
                "datasetName": "load",
                "clientRequestId": f"r{number}",
                "deviceId": "load",
                "protocolVersion": 1,
                "records": [{"op": "REPLACE", "key": f"k{n}", "value": "v", "syncCount": 0}],
            }
        }
        body = json.dumps({"query": PUSH_RECORDS, "variables": variables}).encode()
        headers = signer.headers("/graphql", body)
        pending = self.tally.sent[signer.identity_id]
        pending.append(time.perf_counter())
        try:
            async with self.session.post(self.graphql_url, data=body, headers=headers) as answer:
                result = await answer.json(content_type=None)
            if answer.status != 200 or result.get("errors"):
                raise RuntimeError(str(result)[:300])
        except Exception as exc:
            if self.tally.failed < 3:
                print(f"  push failed: {exc}", file=sys.stderr)
            self.tally.failed += 1
            pending.pop()
            return
        self.tally.acknowledged += 1

    async def drive(
        self, rate: float, count: int, seconds: float = math.inf, max_in_flight: int = 400
    ) -> tuple[float, int]:
        """Send ``count`` pushes at ``rate``/s, for at most ``seconds``.

        Returns the seconds from the first push to the last answer, and the pushes sent.
        """
        loop = asyncio.get_running_loop()
        signers = [s.signer for s in self.subscribers]
        tasks: set[asyncio.Task[None]] = set()
        start = began = loop.time()
        sent = 0
        while sent < count and loop.time() < began + seconds:
            due = min(count, int((loop.time() - start) * rate) + 1)
            while sent < due and len(tasks) < max_in_flight:
                task = asyncio.create_task(self.push(signers[sent % len(signers)]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
            if sent < due:  # the server is behind: the step shows fewer pushes/s
                start += (due - sent) / rate
            await asyncio.sleep(0.002)
        if tasks:
            await asyncio.wait(tasks)
        return loop.time() - began, sent

    async def drain(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.tally.waiting and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        await gather_limited([s.close() for s in self.subscribers], 256)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """This process's own collector kept out of the measure.

    The driver holds thousands of sockets: its full collections took 100-125 ms of CPU, and
    every event that arrived meanwhile counted the pause as server latency. Pushing and
    reading events leaves no reference cycles (measured: nothing to collect after 2,000
    pushes), so the measured window runs with what setup left frozen and the collector off.
    """
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def run_step(
    label: str, server: Server, subscribers: int, rate: float, count: int, leak: bool
) -> StepResult:
    """One step on a fresh ``server``: ``count`` pushes at ``rate`` (in time, if not a leak)."""
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        driver = Driver(server, session)
        began = time.perf_counter()
        await driver.connect(subscribers)
        setup = time.perf_counter() - began
        await driver.drive(min(rate, 100.0), min(200, count))  # warm up: imports, caches
        await driver.drain()
        warm_count = count // 10 if leak else 0
        rss_warm = None
        if warm_count:
            await driver.drive(rate, warm_count)
            await driver.drain()
            await asyncio.sleep(1.0)
            rss_warm = server.rss_mb()
        driver.tally.latencies.clear()
        acknowledged_before = driver.tally.acknowledged
        with collector_paused():
            cpu0, client0 = server.cpu_seconds(), resource.getrusage(resource.RUSAGE_SELF)
            seconds = math.inf if leak else count / rate
            elapsed, _ = await driver.drive(rate, count - warm_count, seconds)
            cpu = server.cpu_seconds() - cpu0
            client1 = resource.getrusage(resource.RUSAGE_SELF)
            await driver.drain()
        if leak:
            await asyncio.sleep(1.0)
        tally = driver.tally
        pushed = tally.acknowledged - acknowledged_before
        client_cpu = client1.ru_utime + client1.ru_stime - client0.ru_utime - client0.ru_stime
        result = StepResult(
            label,
            f"{'leak ' if leak else ''}{subscribers}x{rate:g}",
            rate,
            pushed / elapsed,
            _percentile(tally.latencies, 0.50),
            _percentile(tally.latencies, 0.99),
            tally.waiting,
            tally.failed,
            100 * cpu / elapsed,
            1000 * cpu / max(pushed, 1),
            server.rss_mb(),
            setup,
            100 * client_cpu / elapsed,
            rss_warm,
        )
        await driver.close()
        return result


def baseline_tree(ref: str, into: Path) -> Path:
    """The ``cogsync`` package of commit ``ref``, unpacked under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "cogsync"], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def print_row(r: StepResult) -> None:
    leak = ""
    if r.rss_warm_mb is not None:
        leak = (
            f"  RSS warm {r.rss_warm_mb:.0f} -> {r.rss_mb:.0f} MB ({r.rss_mb / r.rss_warm_mb:.2f}x)"
        )
    print(
        f"{r.server:>9} {r.step:>16} {r.achieved:9.0f} {r.p50_ms:8.1f} {r.p99_ms:8.1f} "
        f"{r.lost:5d} {r.failed:6d} {r.cpu_percent:6.0f} {r.cpu_ms_per_push:7.2f} "
        f"{r.rss_mb:7.0f} {r.client_cpu_percent:6.0f} {r.setup_s:6.1f}{leak}",
        flush=True,
    )


HEADER = (
    f"{'server':>9} {'step':>16} {'pushes/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'lost':>5} "
    f"{'failed':>6} {'CPU %':>6} {'ms/push':>7} {'RSS MB':>7} {'cli %':>6} {'setup':>6}"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--step", action="append", help="SUBSCRIBERSxRATE (repeatable; default 1000x500, 10000x50)"
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each step")
    parser.add_argument("--leak-events", type=int, default=100_000)
    parser.add_argument("--leak-rate", type=float, default=500.0)
    parser.add_argument("--no-leak", action="store_true", help="skip the leak step")
    parser.add_argument("--baseline-ref", default=DEFAULT_BASELINE, help="git ref to compare")
    parser.add_argument("--no-baseline", action="store_true", help="only the working tree")
    parser.add_argument(
        "--server-path",
        type=Path,
        action="append",
        default=[],
        help="also run the cogsync package under this directory (repeatable)",
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        help="where the servers' data directories go (default: a temporary directory; "
        "/dev/shm takes the disk's fsync out of the measure)",
    )
    parser.add_argument("--quick", action="store_true", help="10 s steps, 10,000 leak events")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.leak_events = 10.0, 10_000
    steps = [tuple(map(float, s.split("x"))) for s in (args.step or ["1000x500", "10000x50"])]
    print(f"open files: {raise_fd_limit()}; {os.cpu_count()} CPUs; one client process")
    with tempfile.TemporaryDirectory() as tmp:
        codes = [("current", REPO)]
        codes += [(path.name[:9], path.resolve()) for path in args.server_path]
        if not args.no_baseline:
            codes.insert(0, (args.baseline_ref, baseline_tree(args.baseline_ref, Path(tmp) / "b")))
        plan = [(int(n), rate, math.ceil(rate * args.seconds), False) for n, rate in steps]
        if not args.no_leak:
            plan.append((1000, args.leak_rate, args.leak_events, True))
        print(HEADER)
        results: list[StepResult] = []
        for subscribers, rate, count, leak in plan:
            for label, code in codes:  # interleaved: baseline then current, step by step
                work = Path(tempfile.mkdtemp(dir=args.data_root or tmp))
                server = start_server(code, work / "data")
                try:
                    result = asyncio.run(run_step(label, server, subscribers, rate, count, leak))
                finally:
                    server.stop()
                    shutil.rmtree(work, ignore_errors=True)
                results.append(result)
                print_row(result)
        print_ratios(results, codes[0][0] if len(codes) > 1 else None)


def print_ratios(results: list[StepResult], baseline: str | None) -> None:
    """Each server's ratios to the baseline's, step by step."""
    if baseline is None:
        return
    print(f"\nratios to {baseline} (same run):")
    by_step: dict[str, dict[str, StepResult]] = {}
    for r in results:
        by_step.setdefault(r.step, {})[r.server] = r
    for step, servers in by_step.items():
        old = servers.get(baseline)
        for label, new in servers.items():
            if old is None or label == baseline:
                continue
            growth = ""
            if new.rss_warm_mb and old.rss_warm_mb:
                growth = (
                    f", RSS growth {new.rss_mb / new.rss_warm_mb:.2f}x "
                    f"(baseline {old.rss_mb / old.rss_warm_mb:.2f}x)"
                )
            print(
                f"  {label:>9} {step:>16}: pushes/s {new.achieved / max(old.achieved, 1e-9):.2f}x, "
                f"p99 {new.p99_ms / old.p99_ms:.2g}x, "
                f"CPU per push {new.cpu_ms_per_push / old.cpu_ms_per_push:.2f}x{growth}"
            )


if __name__ == "__main__":
    main()
