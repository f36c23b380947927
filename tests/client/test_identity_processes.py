"""Two processes on one device file with different identities, on a real `cogsync serve`.

Rule: every call resolves its owner from the file, in its transaction. Where another process
moved this process's data (a provisional owner attached, a guest moved at login) the call
follows it: both see the switch. Where another process switched away from this process's
authenticated identity, its calls are refused with `IdentityConflictError` and nothing is
written. So no acknowledged write is ever stored where no one reads or syncs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cogsync.demo import developer_login
from cogsync.server.runner import EmbeddedServer
from cogsync.store.sqlite import SQLiteStore

CHILD = Path(__file__).with_name("identity_process.py")


class Process:
    """A `cogsync.Client` in a child process, opened on ``db`` with ``logins``."""

    def __init__(self, config: Path, db: Path, logins: dict[str, str] | None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self("open", str(config), str(db), logins) is None

    def call(self, *command: Any) -> list[Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        answer: list[Any] = json.loads(self.proc.stdout.readline())
        return answer

    def __call__(self, *command: Any) -> Any:
        status, result = self.call(*command)
        assert status == "ok", result
        return result

    def refused(self, *command: Any) -> bool:
        status, names = self.call(*command)
        return status == "error" and "IdentityConflictError" in names

    def close(self) -> None:
        self("close")
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.stdout.close()
        assert self.proc.wait(30) == 0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(tmp_path_factory.mktemp("server"), port=0) as srv:
        yield srv


@pytest.fixture
def config(server: EmbeddedServer, tmp_path: Path) -> Path:
    path = tmp_path / "cogsync.json"
    server.config.dump(path)
    return path


def logins(server: EmbeddedServer, user: str) -> dict[str, str]:
    key = server.admin_credentials
    return developer_login(server.config, key.access_key_id, key.secret_access_key, user)


def records(db: Path) -> dict[str, dict[str, str | None]]:
    """Every owner's live records in the device file: owner -> key -> value."""
    store = SQLiteStore(db)
    try:
        owners = [store.provisional_owner(), *store.known_identities()]
        return {
            owner: {
                key: rec.value
                for ds in store.list_datasets(owner)
                for key, rec in store.get_records(owner, ds.name).items()
            }
            for owner in owners
        }
    finally:
        store.close()


def server_keys(server: EmbeddedServer, identity_id: str, name: str) -> set[str]:
    assert server.storage is not None
    page = server.storage.list_records(identity_id, name, 0)
    return {r.key for r in page.records if r.value is not None}


def test_another_process_switching_away_from_an_authenticated_identity(
    server: EmbeddedServer, config: Path, tmp_path: Path
) -> None:
    db = tmp_path / "d.db"
    first = Process(config, db, logins(server, "ann"))
    ann = first("identity")
    first("put", "notes", "k1", "ann's")
    second = Process(config, db, logins(server, "ben"))  # switches the file away from ann
    try:
        assert first.refused("put", "notes", "k2", "not acknowledged")
        assert first.refused("get_all", "notes")
        assert first.refused("sync")
        assert second("get_all", "notes") == {}
        second("put", "notes", "b", "ben's")
        second("sync")
        ben = second("identity")
    finally:
        first.close()
        second.close()
    stored = records(db)
    assert stored[ann] == {"k1": "ann's"}  # the acknowledged write, kept for ann
    assert stored[ben] == {"b": "ben's"}
    assert all("k2" not in values for values in stored.values())
    assert server_keys(server, ben, "notes") == {"b"}
    again = Process(config, db, logins(server, "ann"))
    try:
        assert again("get_all", "notes") == {"k1": "ann's"}
        again("sync")
    finally:
        again.close()
    assert server_keys(server, ann, "notes") == {"k1"}


def test_another_process_moving_a_guests_data_takes_this_process_along(
    server: EmbeddedServer, config: Path, tmp_path: Path
) -> None:
    db = tmp_path / "d.db"
    guest = Process(config, db, None)
    guest("put", "notes", "g1", "as a guest")
    guest("sync")
    second = Process(config, db, logins(server, "cat"))
    try:
        cat = second("identity")  # first contact: the guest's data moves to cat
        guest("put", "notes", "g2", "after the move")  # acknowledged: follows the data
        assert guest("get_all", "notes") == {"g1": "as a guest", "g2": "after the move"}
        assert guest.refused("sync")  # it cannot sync as cat: it has no logins of hers
        assert second("get_all", "notes") == {"g1": "as a guest", "g2": "after the move"}
        second("sync")
    finally:
        guest.close()
        second.close()
    assert server_keys(server, cat, "notes") == {"g1", "g2"}


def test_first_contact_in_one_process_attaches_the_others_writes(
    server: EmbeddedServer, config: Path, tmp_path: Path
) -> None:
    db = tmp_path / "d.db"
    first, second = Process(config, db, None), Process(config, db, None)
    try:
        first("put", "notes", "a", "1")
        second("put", "notes", "b", "2")
        identity = first("identity")  # first contact: provisional data attaches
        second("put", "notes", "c", "3")  # follows it
        assert second("identity") == identity  # adopts the identity, no second guest
        second("sync")
    finally:
        first.close()
        second.close()
    assert records(db)[identity] == {"a": "1", "b": "2", "c": "3"}
    assert server_keys(server, identity, "notes") == {"a", "b", "c"}
