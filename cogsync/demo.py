"""`cogsync demo`: an embedded server and two devices of one user, end to end.

It shows offline edits on both devices, a conflict and its resolution, push sync
delivering a change without a `synchronize` call, a new device's first sync with progress
(rich bars on a terminal, plain lines otherwise), and the converged state. The exit
status is 0 only if both devices end with identical data.
"""

from __future__ import annotations

import asyncio
import io
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import boto3

from cogsync._progress_display import ProgressDisplay
from cogsync.client import AsyncClient
from cogsync.config import Config
from cogsync.engine.conflicts import last_writer_wins
from cogsync.models import Conflict, Resolution, SyncResult
from cogsync.progress import SyncProgress

__all__ = ["developer_login", "run_demo"]

Print = Callable[[str], None]


def developer_login(
    config: Config,
    access_key_id: str,
    secret_access_key: str,
    user: str,
    *,
    provider: str = "login.cogsync.dev",
    token_duration: int | None = None,
) -> dict[str, str]:
    """Vouch for ``user`` as the app's backend would; return ``logins`` for a `Client`.

    Calls GetOpenIdTokenForDeveloperIdentity with the server's admin credentials;
    ``token_duration`` (seconds) shortens the token's life.
    """
    client = boto3.client(
        "cognito-identity",
        region_name=config.region,
        endpoint_url=config.identity_endpoint,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
    )
    extra: dict[str, Any] = {} if token_duration is None else {"TokenDuration": token_duration}
    response = client.get_open_id_token_for_developer_identity(
        IdentityPoolId=config.identity_pool_id, Logins={provider: user}, **extra
    )
    return {"cognito-identity.amazonaws.com": response["Token"]}


async def run_demo(
    out: Print = print, *, workdir: Path | None = None, progress: TextIO | None = None
) -> int:
    """Run the demo, printing each step with ``out``; return the exit status.

    ``progress`` receives the progress display (None: plain lines through ``out``).
    """
    from cogsync.server.runner import EmbeddedServer

    with tempfile.TemporaryDirectory(prefix="cogsync-demo-") as tmp:
        base = workdir or Path(tmp)
        async with EmbeddedServer(base / "server", port=0) as server:
            config = server.config
            out(f"server    cogsync serve listening on {config.graphql_url}")
            admin = server.admin_credentials
            logins = await asyncio.to_thread(
                developer_login, config, admin.access_key_id, admin.secret_access_key, "alice"
            )
            async with (
                AsyncClient(config, db_path=base / "laptop.db", logins=logins) as laptop,
                AsyncClient(config, db_path=base / "phone.db", logins=logins) as phone,
            ):
                ok = await _story(out, laptop, phone)
                tablet = AsyncClient(config, db_path=base / "tablet.db", logins=logins)
                async with tablet:
                    await _first_sync(out, laptop, tablet, progress or _Lines(out))
                return ok


async def _first_sync(out: Print, laptop: AsyncClient, tablet: AsyncClient, to: TextIO) -> None:
    out("")
    out("6. a new tablet's first sync of 3 larger datasets, with progress")
    for n in range(3):
        catalog = await laptop.dataset(f"catalog-{n}")
        await catalog.put_all({f"item-{i:04}": f"value {i}" for i in range(500)})
    await laptop.synchronize_all()
    display = ProgressDisplay(to)

    def show(p: SyncProgress) -> None:
        detail = f"{p.bytes_done:,} bytes"
        if not display.tty:
            detail = f"{p.phase} {p.records_done}/{p.records_total} records, {detail}"
        last = p.records_done == p.records_total
        display.update(p.dataset, p.records_done, p.records_total, detail, force=last)

    try:
        results = await tablet.synchronize_all(on_progress=show)
    finally:
        display.close()
    out(f"   tablet  pulled {sum(r.pulled for r in results.values())} records")


class _Lines(io.StringIO):
    """A text file whose every line goes to ``out`` (plain progress lines)."""

    def __init__(self, out: Print) -> None:
        super().__init__()
        self._print = out

    def write(self, text: str) -> int:
        for line in text.splitlines():
            self._print(line)
        return len(text)


async def _story(out: Print, laptop: AsyncClient, phone: AsyncClient) -> int:
    step = _Steps(out)
    step("1. offline edits on both devices (no network calls yet)")
    lp = await laptop.dataset("preferences")
    pp = await phone.dataset("preferences")
    await lp.put_all({"theme": "dark", "language": "en"})
    await asyncio.sleep(0.01)  # the phone's edit is the later one
    await pp.put_all({"theme": "light", "units": "metric"})
    out(f"   laptop  {await lp.get_all()}")
    out(f"   phone   {await pp.get_all()}")

    step("2. the laptop syncs first")
    r = await lp.synchronize()
    out(f"   laptop  pushed {r.pushed}, pulled {r.pulled}, sync count {r.sync_count}")

    step("3. the phone syncs: both changed 'theme' -> a conflict")
    seen: list[Conflict] = []

    def on_conflict(name: str, conflicts: list[Conflict]) -> list[Resolution]:
        seen.extend(conflicts)
        for c in conflicts:
            out(f"   conflict on {name}/{c.key}: local={c.local.value!r} remote={c.remote.value!r}")
        resolutions = last_writer_wins(name, conflicts)
        for res in resolutions:
            out(f"   resolved {res.key} -> {res.value!r} (last writer wins: {res.source})")
        return resolutions

    r = await pp.synchronize(on_conflict=on_conflict)
    out(f"   phone   pushed {r.pushed}, pulled {r.pulled}, conflicts {len(r.conflicts)}")
    r = await lp.synchronize()
    out(f"   laptop  pulled {r.pulled}: {await lp.get_all()}")

    step("4. push sync: the phone listens; the laptop changes a value")
    arrived = asyncio.Event()

    def on_change(name: str, result: SyncResult) -> None:
        if result.pulled:
            arrived.set()

    await phone.start_push_sync(on_change)
    await asyncio.sleep(0.3)  # let the subscription's catch-up sync settle
    arrived.clear()
    await lp.put("font-size", "14")
    started = time.perf_counter()
    await lp.synchronize()
    try:
        await asyncio.wait_for(arrived.wait(), timeout=10)
        out(f"   phone received 'font-size' in {(time.perf_counter() - started) * 1000:.0f} ms")
    except TimeoutError:
        out("   phone did not hear about the change within 10 s")
    await phone.stop_push_sync()

    step("5. converged state")
    a, b = await lp.get_all(), await pp.get_all()
    out(f"   laptop  {a}")
    out(f"   phone   {b}")
    ok = a == b and bool(seen) and a.get("font-size") == "14"
    out("converged: yes" if ok else "converged: NO")
    return 0 if ok else 1


class _Steps:
    def __init__(self, out: Print) -> None:
        self._out = out

    def __call__(self, title: str) -> Any:
        self._out("")
        self._out(title)


def main() -> int:
    """Entry point of ``cogsync demo``."""
    return asyncio.run(run_demo(progress=sys.stdout))
