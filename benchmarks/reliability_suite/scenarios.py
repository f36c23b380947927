"""Generated multi-device scenarios against a real `cogsync serve`, with injected faults.

A worker runs one `EmbeddedServer` (its own data directory) and many scenarios at once on
one event loop. Each scenario is an independent guest identity with 2 or 3 devices, each a
real `AsyncClient` on its own SQLite device file whose GraphQL traffic crosses its own
`FaultyLink` (resets, lost answers, truncated answers at a per-device rate). A scenario is
a seeded sequence of steps:

* ``write``: a put of a fresh value, or a remove of a key the device holds;
* ``sync``: a sync, awaited or left running in the background while later steps (writes on
  that device included) proceed -- so syncs of several devices overlap and edits land
  mid-sync;
* ``join``: wait for a device's background sync;
* ``restart``: the app dies and comes back: its running sync is cancelled wherever it is,
  the client is closed and a new one opens the same device file.

Meanwhile the worker restarts the server on the same data directory every few seconds,
so scenarios in flight also meet refused and cut connections. Finally the faults stop,
every device syncs until nothing moves, and `oracle` judges the outcome. After all
scenarios the server's change log is checked for duplicated writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from cogsync.client import AsyncClient
from cogsync.config import Config
from cogsync.dataset import AsyncDataset
from cogsync.engine.conflicts import last_writer_wins
from cogsync.exceptions import CogsyncError, ConfigError
from cogsync.models import (
    RecordPatch,
    utcnow,
)
from cogsync.server.changes import ChangeEntry
from cogsync.server.runner import EmbeddedServer

from .clients import SharedClientIdentity, SharedSessionBackend, identity_client
from .faults import FaultCounts, FaultyLink
from .oracle import Write, check_duplicates, check_lost
from .trace import RecordingBackend, Trace

__all__ = ["Plan", "ScenarioReport", "make_plan", "run_scenarios"]

DATASET = "notes"
KEYS = ("k0", "k1", "k2")
RATES = (0.0, 0.05, 0.15, 0.3)


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    """One step of a scenario (see the module docstring)."""

    kind: str
    device: int
    key: str = ""
    remove: bool = False
    background: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """A generated scenario: its devices' fault rates and its steps."""

    index: int
    rates: tuple[float, ...]
    steps: tuple[Step, ...]


def make_plan(seed: int, index: int) -> Plan:
    """The scenario number ``index`` of the run seeded ``seed``."""
    rng = random.Random(f"{seed}:{index}")
    devices = rng.choice((2, 2, 3))
    rates = tuple(rng.choice(RATES) for _ in range(devices))
    steps = []
    for _ in range(rng.randint(4, 10)):
        device, roll = rng.randrange(devices), rng.random()
        if roll < 0.55:
            steps.append(Step("write", device, rng.choice(KEYS), remove=rng.random() < 0.25))
        elif roll < 0.88:
            steps.append(Step("sync", device, background=rng.random() < 0.5))
        elif roll < 0.95:
            steps.append(Step("join", device))
        else:
            steps.append(Step("restart", device))
    return Plan(index, rates, tuple(steps))


@dataclasses.dataclass
class ScenarioReport:
    """Counts over the scenarios of one or more workers."""

    scenarios: int = 0
    lost: int = 0
    duplicated: int = 0
    stuck: int = 0
    writes: int = 0
    syncs: int = 0
    failed_syncs: int = 0
    conflicts: int = 0
    device_restarts: int = 0
    server_restarts: int = 0
    requests: int = 0
    longest_restart: float = 0.0
    faults: Counter[str] = dataclasses.field(default_factory=Counter)
    examples: list[str] = dataclasses.field(default_factory=list)  # lost or duplicated
    traces: list[str] = dataclasses.field(default_factory=list)  # of failed scenarios
    stuck_examples: list[str] = dataclasses.field(default_factory=list)

    def merge(self, other: ScenarioReport) -> None:
        """Add ``other``'s counts to these."""
        for item in dataclasses.fields(self):
            mine, theirs = getattr(self, item.name), getattr(other, item.name)
            if isinstance(mine, Counter):
                mine.update(theirs)
            elif isinstance(mine, list):
                mine.extend(theirs[: max(0, (3 if item.name == "traces" else 10) - len(mine))])
            elif item.name == "longest_restart":
                self.longest_restart = max(mine, theirs)
            else:
                setattr(self, item.name, mine + theirs)


def _listening_port() -> int:
    """A free port below the kernel's ephemeral range (not handed to outgoing sockets)."""
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(1000):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return 0


class _Worker:
    """One server and the shared pieces every scenario of this worker uses.

    The server runs on its own event-loop thread, as it would in its own process: on the
    scenarios' loop its identity handlers and the clients' boto3 calls would share (and
    exhaust) one default executor.
    """

    def __init__(self, data: Path, seed: int, report: ScenarioReport) -> None:
        self.data, self.report = data, report
        self.rng = random.Random(f"{seed}:worker")
        # A port below the ephemeral range: after a restart no outgoing socket holds it.
        self.server = EmbeddedServer(data / "server", port=_listening_port())
        self.server_loop = asyncio.new_event_loop()
        self.server_thread = threading.Thread(
            target=self.server_loop.run_forever, name="reliability-server", daemon=True
        )
        self.counts = FaultCounts()
        self.config: Config | None = None
        self.boto: Any = None
        self.identities: dict[str, dict[str, Sequence[RecordPatch]]] = {}  # id -> pushes
        self.sync_counts: dict[str, int] = {}
        self.scenario_of: dict[str, int] = {}  # identity -> scenario index
        self.traces: dict[str, Trace] = {}  # identity -> its scenario's trace
        self.resolver: Callable[..., Any] = last_writer_wins
        self.restarting = asyncio.Lock()
        self.restarts: set[asyncio.Task[None]] = set()
        self.running: set[_Scenario] = set()  # their traces note server restarts

    def note(self, what: str) -> None:
        for scenario in self.running:
            scenario.trace.note("server", what)

    async def on_server_loop(self, coroutine: Coroutine[Any, Any, None]) -> None:
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self.server_loop))

    async def start(self) -> None:
        self.server_thread.start()
        await self.on_server_loop(self.server.start())
        self.config = self.server.config
        self.boto = await asyncio.to_thread(identity_client, self.config)

    async def restart_server(self) -> None:
        """Stop the server (cutting every connection) and start it on the same directory."""
        async with self.restarting:
            await asyncio.sleep(self.rng.uniform(0.0, 0.5))  # land among running scenarios
            started = time.monotonic()
            self.note("stopping")
            await self.on_server_loop(self.server.stop())
            self.note("stopped")
            await asyncio.sleep(self.rng.uniform(0.0, 0.1))
            for attempt in range(100):  # the port may be briefly taken by an outgoing socket
                try:
                    await self.on_server_loop(self.server.start())
                    self.note("started")
                    break
                except ConfigError:
                    if attempt == 99:
                        raise
                    await asyncio.sleep(0.1)
            self.report.server_restarts += 1
            took = time.monotonic() - started
            self.report.longest_restart = max(self.report.longest_restart, took)

    async def stop(self) -> None:
        await self.on_server_loop(self.server.stop())
        self.server_loop.call_soon_threadsafe(self.server_loop.stop)
        await asyncio.to_thread(self.server_thread.join)
        self.server_loop.close()

    def change_log(self) -> list[ChangeEntry]:
        assert self.server.storage is not None
        entries: list[ChangeEntry] = []
        while batch := self.server.storage.read_changes(entries[-1].seq if entries else 0):
            entries.extend(batch)
        return entries


class _Device:
    def __init__(self, scenario: _Scenario, number: int, rate: float) -> None:
        self.scenario, self.number = scenario, number
        self.device_id = f"dev{number}"
        self.path = scenario.directory / f"{self.device_id}.db"
        self.link = FaultyLink(scenario.worker.server.port, scenario.rng, scenario.worker.counts)
        self.link.on_fault = lambda kind, op: scenario.trace.note(self.device_id, f"{kind} {op}")
        self.link.rate = rate
        self.client: AsyncClient | None = None
        self.dataset: AsyncDataset | None = None
        self.task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        worker = self.scenario.worker
        assert worker.config is not None
        config = dataclasses.replace(
            worker.config, graphql_url=f"http://127.0.0.1:{self.link.port}/graphql"
        )
        backend = RecordingBackend(
            SharedSessionBackend(config, self.scenario.identity, timeout=10.0),
            self.scenario.sent,
            self.scenario.trace,
            self.device_id,
        )
        self.client = AsyncClient(
            config,
            db_path=self.path,
            identity_id=self.scenario.identity_id,
            device_id=self.device_id,
            backend=backend,
        )
        self.dataset = await self.client.dataset(DATASET)

    async def close(self) -> None:
        if self.task is not None:
            self.scenario.trace.note(self.device_id, "app dies")
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
        if self.client is not None:
            await self.client.close()
            self.client = None

    async def sync(self, *, until_done: bool = False) -> None:
        """One sync (retried for up to 3 minutes while the server restarts if ``until_done``)."""
        report = self.scenario.worker.report
        deadline = time.monotonic() + 180
        while True:
            assert self.dataset is not None
            report.syncs += 1
            trace = self.scenario.trace
            trace.note(self.device_id, "sync")
            try:
                result = await self.dataset.synchronize(on_conflict=self.scenario.worker.resolver)
            except CogsyncError as exc:
                trace.note(self.device_id, f"sync failed: {type(exc).__name__}")
                report.failed_syncs += 1
                if not until_done or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
                continue
            report.conflicts += len(result.conflicts)
            trace.note(
                self.device_id,
                f"synced: pulled {result.pulled}, pushed {result.pushed}, "
                f"{len(result.conflicts)} conflicts, sync count {result.sync_count}",
            )
            return

    async def up_to_date(self, server_sync_count: int) -> bool:
        """Whether this device has pulled everything and has nothing to push."""
        assert self.client is not None and self.dataset is not None
        listed = {d.name: d.sync_count for d in await self.client.list_datasets()}
        if listed.get(DATASET, 0) != server_sync_count:
            return False
        records = [await self.dataset.record(key) for key in KEYS]
        return not any(r is not None and r.dirty for r in records)

    async def sync_quietly(self) -> None:
        with contextlib.suppress(CogsyncError):
            await self.sync()

    async def join(self) -> None:
        if self.task is not None:
            await self.task
            self.task = None


class _Scenario:
    def __init__(self, worker: _Worker, plan: Plan, directory: Path, seed: int) -> None:
        self.worker, self.plan, self.directory = worker, plan, directory
        self.rng = random.Random(f"{seed}:{plan.index}:faults")
        assert worker.config is not None
        self.identity = SharedClientIdentity(worker.config, worker.boto)
        self.identity_id = ""
        self.sent: dict[str, Sequence[RecordPatch]] = {}
        self.writes: list[Write] = []
        self.trace = Trace()
        self.devices = [_Device(self, n, rate) for n, rate in enumerate(plan.rates)]

    async def run(self) -> list[str]:
        """Run the plan, converge, and return the oracle's complaints (lost writes)."""
        deadline = time.monotonic() + 180
        while not self.identity_id:
            try:
                self.identity_id = await self.identity.get_identity_id()
            except CogsyncError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        self.worker.identities[self.identity_id] = self.sent
        self.worker.scenario_of[self.identity_id] = self.plan.index
        self.worker.traces[self.identity_id] = self.trace
        for device in self.devices:
            await device.link.start()
            await device.open()
        try:
            for step in self.plan.steps:
                await self.step(step)
            for device in self.devices:
                await device.join()
                device.link.rate = 0.0
            self.trace.note("-", "faults stop; converging")
            return await self.converge()
        finally:
            for device in self.devices:
                await device.close()
                await device.link.close()

    async def step(self, step: Step) -> None:
        device = self.devices[step.device]
        if step.kind == "write":
            await self.write(device, step.key, step.remove)
        elif step.kind == "sync":
            await device.join()
            self.trace.note(device.device_id, "background" if step.background else "awaited")
            if step.background:
                device.task = asyncio.create_task(device.sync_quietly())
                await asyncio.sleep(self.rng.uniform(0, 0.01))
            else:
                await device.sync_quietly()
        elif step.kind == "join":
            await device.join()
        elif step.kind == "restart":
            self.trace.note(device.device_id, "app restart")
            self.worker.report.device_restarts += 1
            await device.close()
            await device.open()

    async def write(self, device: _Device, key: str, remove: bool) -> None:
        dataset = device.dataset
        assert dataset is not None
        seq = len(self.writes)
        if remove:
            before = await dataset.record(key)
            if before is None or before.value is None:
                return  # nothing to remove here
            await dataset.remove(key)
            value = None
        else:
            value = f"{self.plan.index}:{device.number}:{seq}"
            await dataset.put(key, value)
        returned = utcnow()
        after = await dataset.record(key)
        stamp = None
        if after is not None and after.value == value:
            stamp = after.device_last_modified_date
        elif value is not None:
            raise AssertionError(f"put {key}={value} read back as {after}")
        left = "nothing" if after is None else f"revision {after.revision}, sync count "
        left += "" if after is None else f"{after.sync_count}"
        what = f"put {key}={value!r}" if value is not None else f"remove {key}"
        self.trace.note(device.device_id, f"{what} (seq {seq}): {left}")
        self.writes.append(Write(device.device_id, seq, key, value, stamp, returned))
        self.worker.report.writes += 1

    async def converge(self) -> list[str]:
        """Sync every device that is behind or has changes, round after round, until
        all are up to date with the server; then ask the oracle."""
        for _ in range(8):
            behind = 0
            for device in self.devices:
                server_count = (await self.server_state())[1]
                if not await device.up_to_date(server_count):
                    behind += 1
                    await device.sync(until_done=True)
            if not behind:
                break
        else:
            return ["devices still behind or dirty after 8 fault-free rounds"]
        states, dirty = {}, {}
        for device in self.devices:
            assert device.dataset is not None and device.client is not None
            states[device.device_id] = await device.dataset.get_all()
            records = [await device.dataset.record(key) for key in KEYS]
            dirty[device.device_id] = sum(1 for r in records if r is not None and r.dirty)
        server, sync_count = await self.server_state()
        self.worker.sync_counts[self.identity_id] = sync_count
        return check_lost(self.writes, states, dirty, server)

    async def server_state(self) -> tuple[dict[str, str], int]:
        for _ in range(3600):
            storage = self.worker.server.storage
            if storage is not None:
                with contextlib.suppress(Exception):
                    return self._read(storage)
            await asyncio.sleep(0.05)
        raise RuntimeError("the server did not come back")

    def _read(self, storage: Any) -> tuple[dict[str, str], int]:
        values: dict[str, str] = {}
        token = None
        while True:
            page = storage.list_records(self.identity_id, DATASET, 0, next_token=token)
            sync_count = page.sync_count
            values.update({r.key: r.value for r in page.records if r.value is not None})
            token = page.next_token
            if token is None:
                return values, sync_count


async def _run_worker(
    seed: int,
    indices: Sequence[int],
    *,
    concurrency: int,
    restart_every: int,
    data: Path,
    resolver: Callable[..., Any],
) -> ScenarioReport:
    report = ScenarioReport()
    worker = _Worker(data, seed, report)
    worker.resolver = resolver
    await worker.start()
    slots = asyncio.Semaphore(concurrency)

    async def one(index: int) -> None:
        async with slots:
            if restart_every and index % restart_every == restart_every - 1:
                worker.restarts.add(asyncio.create_task(worker.restart_server()))
            plan = make_plan(seed, index)
            directory = data / f"s{index}"
            directory.mkdir()
            scenario = _Scenario(worker, plan, directory, seed)
            worker.running.add(scenario)
            try:
                problems = await asyncio.wait_for(scenario.run(), 600)
            except Exception as exc:  # a scenario that cannot finish is reported, not hidden
                report.stuck += 1
                if len(report.stuck_examples) < 10:
                    report.stuck_examples.append(
                        f"scenario {index} (seed {seed}) did not finish: {exc!r}"
                    )
                if len(report.traces) < 3:
                    report.traces.append(scenario.trace.text(f"trace of scenario {index}:"))
                return
            finally:
                worker.running.discard(scenario)
                for path in directory.iterdir():
                    path.unlink()
                directory.rmdir()
            report.scenarios += 1
            if problems:
                report.lost += 1
                report.examples.append(f"scenario {index} (seed {seed}) lost: {problems}")
                if len(report.traces) < 3:
                    report.traces.append(scenario.trace.text(f"trace of scenario {index}:"))

    try:
        await asyncio.gather(*(one(index) for index in indices))
    finally:
        await asyncio.gather(*worker.restarts)
    by_identity: dict[str, list[ChangeEntry]] = {}
    for entry in worker.change_log():
        by_identity.setdefault(entry.identity_id, []).append(entry)
    for identity_id, sent in worker.identities.items():
        log = by_identity.get(identity_id, [])
        counts = (
            {DATASET: worker.sync_counts[identity_id]} if identity_id in worker.sync_counts else {}
        )
        problems = check_duplicates(log, sent, counts)
        if problems:
            report.duplicated += 1
            index = worker.scenario_of.get(identity_id)
            report.examples.append(f"scenario {index} (seed {seed}) duplicated: {problems}")
            if len(report.traces) < 3:
                report.traces.append(worker.traces[identity_id].text(f"trace of scenario {index}:"))
    await worker.stop()
    report.requests = worker.counts.requests
    report.faults = worker.counts.faults
    return report


def run_scenarios(
    seed: int,
    indices: Sequence[int],
    *,
    concurrency: int = 16,
    restart_every: int = 50,
    resolver: Callable[..., Any] = last_writer_wins,
) -> ScenarioReport:
    """Run scenarios ``indices`` of the run seeded ``seed`` in this process, restarting the
    server as every ``restart_every``-th scenario starts (0: never). ``resolver`` is the
    devices' conflict resolver (the oracle expects last-writer-wins; tests swap it for a
    broken one to see the oracle catch it)."""
    logger = logging.getLogger("cogsync")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # expected failures are noisy (for this run only)
    try:
        with tempfile.TemporaryDirectory(prefix="cogsync-reliability-") as tmp:
            work = _run_worker(
                seed,
                indices,
                concurrency=concurrency,
                restart_every=restart_every,
                data=Path(tmp),
                resolver=resolver,
            )
            return asyncio.run(work)
    finally:
        logger.setLevel(level)
