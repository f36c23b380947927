"""Device processes SIGKILLed mid-write and mid-sync: no acknowledged write may be lost.

Each trial forks a device process (from a fork server that has cogsync imported, so a
trial starts in milliseconds) that opens a real device file and loops: put a fresh value,
put several in one transaction, remove a key it holds, or sync. Around every call it tells
the parent over a pipe ``begin ...`` and, once the call has returned, the acknowledgement;
a pipe write that returned is in the kernel and survives the writer's death.

The parent picks a target -- the n-th write or the n-th sync -- and SIGKILLs the process
a random moment (0-3 ms into a write, 0-60 ms into a sync) after its ``begin`` arrives.
Then it drains the pipe and checks, per key, against the last acknowledged write (or the
write in flight at the kill, which may or may not have landed -- all of its keys, or none):

1. the device file, reopened: it holds exactly that;
2. after the reopened device syncs and a fresh device of the same identity syncs: both
   hold exactly that, and so does the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from cogsync.client import AsyncClient
from cogsync.config import Config
from cogsync.dataset import AsyncDataset
from cogsync.exceptions import CogsyncError
from cogsync.server.runner import EmbeddedServer

from .clients import SharedClientIdentity, SharedSessionBackend, identity_client

__all__ = ["KillReport", "run_kills"]

KEYS = tuple(f"k{i}" for i in range(12))
_LOCK = threading.Lock()  # trials run on threads and add to one report
# What a device process would import on its way: imported once in the fork server.
_PRELOAD = [
    "reliability_suite.kills",
    "cogsync.store.sqlite",
    "cogsync.remote.graphql",
    "cogsync.auth.cognito",
    "botocore.session",
    "gql.transport.aiohttp",
]
DATASET = "notes"


@dataclasses.dataclass
class KillReport:
    """Counts over the kill trials."""

    trials: int = 0
    lost: int = 0
    acknowledged: int = 0
    phases: Counter[str] = dataclasses.field(default_factory=Counter)
    in_flight_landed: int = 0
    examples: list[str] = dataclasses.field(default_factory=list)


def _device_main(conn: Connection, config_path: str, db: str, identity: str, seed: int) -> None:
    """The device process: write and sync forever, reporting every call (never returns)."""

    async def run() -> None:
        rng = random.Random(seed)
        config = Config.load(config_path)
        async with AsyncClient(config, db_path=db, identity_id=identity, device_id="victim") as c:
            dataset = await c.dataset(DATASET)
            live: set[str] = set(await dataset.get_all())
            n = 0
            while True:
                n += 1
                roll = rng.random()
                if roll < 0.45:
                    key, value = rng.choice(KEYS), f"{seed}:{n}"
                    conn.send(("begin", "write", {key: value}))
                    await dataset.put(key, value)
                    conn.send(("ack", "write", {key: value}))
                    live.add(key)
                elif roll < 0.6:
                    values = {k: f"{seed}:{n}:{k}" for k in rng.sample(KEYS, rng.randint(2, 5))}
                    conn.send(("begin", "write", values))
                    await dataset.put_all(values)
                    conn.send(("ack", "write", values))
                    live.update(values)
                elif roll < 0.75 and live:
                    key = rng.choice(sorted(live))
                    conn.send(("begin", "write", {key: None}))
                    await dataset.remove(key)
                    conn.send(("ack", "write", {key: None}))
                    live.discard(key)
                else:
                    conn.send(("begin", "sync", {}))
                    with contextlib.suppress(CogsyncError):
                        await dataset.synchronize()
                    conn.send(("ack", "sync", {}))

    asyncio.run(run())


def _check(
    state: dict[str, str],
    acked: dict[str, str | None],
    in_flight: dict[str, str | None],
) -> tuple[list[str], bool]:
    """Problems with ``state``; and whether the in-flight write landed."""
    landed = bool(in_flight) and all(state.get(k) == v for k, v in in_flight.items())
    expected = {**acked, **in_flight} if landed else acked
    problems = [
        f"{key}: holds {state.get(key)!r}, last acknowledged {value!r}"
        for key, value in expected.items()
        if state.get(key) != value
    ]
    problems += [f"{key}={state[key]!r} was never written" for key in state if key not in expected]
    return problems, landed


async def _verify(
    config: Config,
    boto: Any,
    identity_id: str,
    db: Path,
    fresh_db: Path,
    acked: dict[str, str | None],
    in_flight: dict[str, str | None],
) -> tuple[list[str], bool]:
    """Check the killed device's file, then its state and a fresh device's after syncing."""
    identity = SharedClientIdentity(config, boto, identity_id=identity_id)
    problems: list[str] = []

    def device(path: Path, device_id: str | None) -> AsyncClient:
        backend = SharedSessionBackend(config, identity)
        args = {"identity_id": identity_id, "device_id": device_id, "backend": backend}
        return AsyncClient(config, db_path=path, **args)  # type: ignore[arg-type]

    async with device(db, "victim") as victim:
        dataset = await victim.dataset(DATASET)
        local, landed = _check(await dataset.get_all(), acked, in_flight)
        problems += [f"device file after the kill: {p}" for p in local]
        await _sync(dataset)
        synced = _check(await dataset.get_all(), acked, in_flight)[0]
        problems += [f"device after its sync: {p}" for p in synced]
    async with device(fresh_db, None) as fresh:
        dataset = await fresh.dataset(DATASET)
        await _sync(dataset)
        problems += [
            f"fresh device: {p}" for p in _check(await dataset.get_all(), acked, in_flight)[0]
        ]
    return problems, landed


async def _sync(dataset: AsyncDataset) -> None:
    for attempt in range(50):
        try:
            await dataset.synchronize()
            return
        except CogsyncError:
            if attempt == 49:
                raise
            await asyncio.sleep(0.1)


def _trial(
    number: int,
    seed: int,
    server: EmbeddedServer,
    tmp: Path,
    context: Any,
    boto: Any,
    report: KillReport,
) -> None:
    rng = random.Random(f"{seed}:kill:{number}")
    db = tmp / f"device{number}.db"
    config_path = tmp / "cogsync.json"
    pool_id = server.config.identity_pool_id
    identity = boto.get_id(IdentityPoolId=pool_id)["IdentityId"]  # a fresh guest identity
    target = rng.choice(("write", "sync"))
    nth = rng.randint(1, 12 if target == "write" else 4)
    delay = rng.uniform(0, 0.003 if target == "write" else 0.06)
    reader, writer = context.Pipe(duplex=False)
    args = (writer, str(config_path), str(db), identity, rng.randrange(2**31))
    process = context.Process(target=_device_main, args=args, daemon=True)
    process.start()
    writer.close()
    acked: dict[str, str | None] = {}
    in_flight: dict[str, str | None] = {}
    phase, seen = "idle", 0

    def note(message: tuple[str, str, dict[str, str | None]]) -> None:
        nonlocal phase, in_flight
        kind, what, values = message
        phase, in_flight = (what, values) if kind == "begin" else ("idle", {})
        if kind == "ack":
            acked.update(values)

    deadline = time.monotonic() + 60
    while process.is_alive() and time.monotonic() < deadline:
        if not reader.poll(0.5):
            continue
        message = reader.recv()
        note(message)
        if message[:2] == ("begin", target):
            seen += 1
            if seen == nth:
                time.sleep(delay)
                break
    os.kill(process.pid, signal.SIGKILL)
    process.join()
    with contextlib.suppress(EOFError, OSError):  # what it said before dying
        while reader.poll(0):
            note(reader.recv())
    reader.close()
    problems, landed = asyncio.run(
        _verify(server.config, boto, identity, db, tmp / f"fresh{number}.db", acked, in_flight)
    )
    with _LOCK:
        report.trials += 1
        report.acknowledged += len(acked)
        report.phases[f"mid-{phase}" if phase != "idle" else "between calls"] += 1
        report.in_flight_landed += landed
        if problems:
            report.lost += 1
            report.examples.append(f"kill trial {number} (seed {seed}): {problems}")


def run_kills(seed: int, trials: int, *, parallel: int = 3) -> KillReport:
    """Run ``trials`` kill trials against one server in this process."""
    report = KillReport()
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    here = str(Path(__file__).resolve().parent.parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    with (
        tempfile.TemporaryDirectory(prefix="cogsync-kills-") as name,
        EmbeddedServer(Path(name) / "server") as server,
    ):
        tmp = Path(name)
        server.config.dump(tmp / "cogsync.json")
        boto = identity_client(server.config)
        with ThreadPoolExecutor(parallel) as pool:
            futures = [
                pool.submit(_trial, n, seed, server, tmp, context, boto, report)
                for n in range(trials)
            ]
            for future in futures:
                future.result()
    return report
