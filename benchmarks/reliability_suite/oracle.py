"""The oracle: did a scenario lose or duplicate an acknowledged write?

An *acknowledged write* is a ``put`` or ``remove`` that returned: it is on the device's disk.
Every put writes a value used nowhere else (``<scenario>:<device>:<n>``), so a value names
its write. After a scenario, every device syncs without faults until nothing moves; then:

**Convergence.** Every device holds the same live records as the server and nothing dirty.

**Lost** (per key). cogsync's default resolver is last-writer-wins over the rank
``(device-modified time in ms, device id)``, and every write of a device supersedes that
device's earlier writes. So each device's *head* (its last acknowledged write of the key)
competes, and the converged outcome must be the highest-ranked head: its value, or absence
for a remove. The time of a put or a remove that left a tombstone is read back from the
device's record right after the call returned (the exact stamp the library stored).

One refinement: removing a record the device never synced deletes it outright and stores
no stamp (there is nothing to tell the server -- unless the device's put reached the server
without the device learning it, in which case the library pushes a dateless tombstone).
Such a *local cancel* retracts that device's own writes; it never saw another device's
version of the key. So a head that is a cancel allows two outcomes: the best head of the
other devices (or absence if there is none), and, if the cancel may be the newest write of
all (it returned no earlier than that head's stamp), absence. A device's own earlier value
coming back after its cancel is never allowed: that is a lost remove.

A scenario *loses* a write if devices do not converge, or some key's outcome is not allowed.

**Duplicated** (from the server's change log, which records every applied batch with its
client request id, and the patches each device sent under that id):

* a client request id applied twice;
* a put value applied in two batches (the same write applied twice);
* the same remove applied in two batches: one device-modified time applied twice for a key,
  or, for a dateless tombstone, a key removed by two applied batches with no applied put in
  between (a device that puts and removes again locally between two syncs sends a new
  remove, with its own time, on top of the server's tombstone: a write of its own);
* a dataset's sync counts in the log not exactly 1, 2, ..., n (a batch counted twice).

Under last-writer-wins none of these can happen legitimately: a device re-sends a value
only if it outranks the server's, and the server's version always outranks what it
replaced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from cogsync.models import RecordPatch
from cogsync.server.changes import ChangeEntry

__all__ = ["Write", "allowed_outcomes", "check_duplicates", "check_lost"]


@dataclass(frozen=True, slots=True)
class Write:
    """One acknowledged write of a scenario.

    Attributes:
        device: the writing device's id (the tie-break of last-writer-wins).
        seq: the write's position among all the scenario's writes.
        key: the record key.
        value: the value put, or None for a remove.
        stamp: the device-modified time stored with it; None for a local cancel.
        returned: when the call had returned (a local cancel's stamp is not later).
    """

    device: str
    seq: int
    key: str
    value: str | None
    stamp: datetime | None
    returned: datetime

    @property
    def cancel(self) -> bool:
        """A remove of a never-synced record (deleted outright, no stamp)."""
        return self.stamp is None


def _heads(writes: Iterable[Write], key: str) -> dict[str, Write]:
    heads: dict[str, Write] = {}
    for write in sorted(writes, key=lambda w: w.seq):
        if write.key == key:
            heads[write.device] = write
    return heads


def allowed_outcomes(writes: Sequence[Write], key: str) -> set[str | None]:
    """The final values of ``key`` (None: absent) that keep every acknowledged write."""
    heads = _heads(writes, key).values()
    ranked = [(w.stamp, w.device, w.value) for w in heads if w.stamp is not None]
    best = max(ranked) if ranked else None
    allowed: set[str | None] = {best[2] if best is not None else None}
    if best is not None and any(w.stamp is None and w.returned >= best[0] for w in heads):
        allowed.add(None)
    return allowed


def check_lost(
    writes: Sequence[Write],
    devices: Mapping[str, Mapping[str, str]],
    dirty: Mapping[str, int],
    server: Mapping[str, str],
) -> list[str]:
    """Problems with the converged state: divergence, dirty records, lost writes."""
    problems = []
    for device, values in devices.items():
        if dict(values) != dict(server):
            problems.append(f"device {device} holds {dict(values)}, the server {dict(server)}")
        if dirty.get(device):
            problems.append(f"device {device} has {dirty[device]} unsynced records")
    for key in sorted({w.key for w in writes} | set(server)):
        allowed = allowed_outcomes(writes, key)
        if server.get(key) not in allowed:
            problems.append(f"key {key}: server holds {server.get(key)!r}, allowed {allowed}")
    return problems


def check_duplicates(
    log: Sequence[ChangeEntry],
    sent: Mapping[str, Sequence[RecordPatch]],
    server_sync_counts: Mapping[str, int],
) -> list[str]:
    """Problems in one identity's change log (``sent``: request id -> patches pushed)."""
    problems = []
    seen_ids: set[str] = set()
    put_in: dict[tuple[str, str, str], int] = {}
    removed: dict[tuple[str, str], bool] = {}
    removals: set[tuple[str, str, datetime]] = set()
    counts: dict[str, list[int]] = {}
    for entry in log:
        counts.setdefault(entry.dataset_name, []).append(entry.sync_count)
        request_id = entry.client_request_id or ""
        if request_id in seen_ids:
            problems.append(f"request id {request_id} applied twice")
        seen_ids.add(request_id)
        patches = {p.key: p for p in sent.get(request_id, ())}
        for key in entry.keys:
            patch = patches.get(key)
            if patch is None:
                continue
            if patch.value is not None:
                where = (entry.dataset_name, key, patch.value)
                if where in put_in:
                    problems.append(
                        f"{key}={patch.value!r} applied at sync counts {put_in[where]} "
                        f"and {entry.sync_count}"
                    )
                put_in[where] = entry.sync_count
                removed[entry.dataset_name, key] = False
            else:
                stamp = patch.device_last_modified_date
                again = (
                    (entry.dataset_name, key, stamp) in removals
                    if stamp is not None
                    else removed.get((entry.dataset_name, key))
                )
                if again:
                    problems.append(f"remove of {key} applied again at {entry.sync_count}")
                if stamp is not None:
                    removals.add((entry.dataset_name, key, stamp))
                removed[entry.dataset_name, key] = True
    for name, numbers in counts.items():
        if numbers != list(range(1, len(numbers) + 1)):
            problems.append(f"dataset {name}: sync counts in the log {numbers}")
        if server_sync_counts.get(name, len(numbers)) != len(numbers):
            problems.append(
                f"dataset {name}: sync count {server_sync_counts[name]}, "
                f"{len(numbers)} batches applied"
            )
    return problems
