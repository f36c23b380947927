"""A live app: two devices leave their clients running with auto sync.

Each device prints its change events and status changes. A note written on the laptop
reaches the phone with no `synchronize` call; then the server goes away, both devices go
on writing offline, and when the server is back everything converges by itself.

Run: python examples/live_app.py
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cogsync
from cogsync.demo import developer_login
from cogsync.server.runner import EmbeddedServer

_printing = threading.Lock()


def say(*parts: object) -> None:
    """print, one line at a time (callbacks of both devices run in worker threads)."""
    with _printing:
        print(*parts, flush=True)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting: {what}")
        time.sleep(0.1)


def device(name: str, config: cogsync.Config, logins: dict[str, str], db: Path) -> cogsync.Client:
    """A client left running: auto sync on, events and status changes printed."""
    client = cogsync.Client(config, db_path=db, logins=logins)
    online: list[bool | None] = [None]

    def on_change(event: cogsync.ChangeEvent) -> None:
        say(f"{name:7} {event.origin:6} change in {event.dataset}: {', '.join(event.keys)}")

    def on_status(status: cogsync.ClientStatus) -> None:  # callbacks run one at a time
        if status.online != online[0]:
            online[0] = status.online
            say(f"{name:7} is {'online' if status.online else 'offline'}")

    client.on_change(on_change)
    client.on_status(on_status)
    client.start_auto_sync(debounce=0.2)
    return client


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as devices:
        data = Path(tmp) / "server"
        with EmbeddedServer(data, port=0) as server:
            config, key, port = server.config, server.admin_credentials, server.port
            logins = developer_login(config, key.access_key_id, key.secret_access_key, "robin")
            laptop = devices.enter_context(device("laptop", config, logins, data.with_name("l.db")))
            phone = devices.enter_context(device("phone", config, logins, data.with_name("p.db")))
            on_laptop, on_phone = laptop.dataset("notes"), phone.dataset("notes")
            wait_for(lambda: bool(laptop.status().online and phone.status().online), "contact")

            on_laptop.put("groceries", "milk, bread")
            wait_for(lambda: on_phone.get("groceries") is not None, "the note on the phone")
            say("phone   reads groceries =", on_phone.get("groceries"))

        say("-- the server went away; both devices go on writing --")
        on_laptop.put("todo", "call the plumber")
        on_phone.put("groceries", "milk, bread, eggs")
        wait_for(lambda: laptop.status().online is False, "the laptop noticing")
        say("laptop  pending changes:", on_laptop.status().pending_changes)

        with EmbeddedServer(data, port=port):
            say("-- the server is back --")
            expected = {"groceries": "milk, bread, eggs", "todo": "call the plumber"}
            wait_for(
                lambda: on_laptop.get_all() == expected and on_phone.get_all() == expected,
                "convergence",
            )
            say("converged after the outage:", on_laptop.get_all())
            say("pending changes:", on_laptop.status().pending_changes)
            devices.close()  # the devices stop before the server does
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
