"""Whose data a client's call reaches: resolving a client's owner against the device file.

A device file has one current owner (its identity id, or its provisional owner while none is
known). When data moves to another identity (a provisional owner attached on first contact,
a guest moved or merged at login) the store records ``old -> new``, so a client that still
believes it is ``old`` -- a call queued before the move, or another process -- follows its
data to ``new``. An authenticated identity's data never moves, so a client of it that finds
the file switched to someone else is refused with `IdentityConflictError`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping

from cogsync.exceptions import IdentityConflictError

__all__ = [
    "follow_moves",
    "forget_identities",
    "known_identities",
    "remember_identity",
    "set_identity",
]


def follow_moves(claimed: str, current: str, moved_to: Callable[[str], str | None]) -> str:
    """``current`` if ``claimed`` is it or its data moved into it; else `IdentityConflictError`.

    Args:
        claimed: the owner a client believes it is.
        current: the file's current owner.
        moved_to: the owner a given owner's data moved to, or None.
    """
    seen = {claimed}
    owner: str | None = claimed
    while owner is not None and owner != current:
        owner = moved_to(owner)
        if owner in seen:
            break
        if owner is not None:
            seen.add(owner)
    if owner != current:
        raise IdentityConflictError(
            f"this device file now belongs to another identity than {claimed}, switched by "
            "another client: close this client and open the file again (with the logins of "
            "the identity to use)"
        )
    return current


# -- the same kept in a SQLite ``meta`` table (``identity_id``, ``moved:<owner>``,
# ``logins:<identity id>``), inside the caller's transaction --------------------------


def set_identity(
    conn: sqlite3.Connection, identity_id: str | None, moved_from: str | None = None
) -> None:
    """Make ``identity_id`` current (None: none); ``moved_from``'s data moved to it."""
    if identity_id is None:
        conn.execute("DELETE FROM meta WHERE key = 'identity_id'")
        return
    rows = [("identity_id", identity_id)]
    if moved_from is not None and moved_from != identity_id:
        rows.append((f"moved:{moved_from}", identity_id))
    conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", rows)
    conn.execute("DELETE FROM meta WHERE key = ?", (f"moved:{identity_id}",))


def known_identities(rows: Iterable[tuple[str, str]]) -> dict[str, dict[str, str | None]]:
    """Identity id -> the logins it used on this device ({} for a guest), from meta rows."""
    return {key.removeprefix("logins:"): json.loads(value) for key, value in rows}


def remember_identity(
    conn: sqlite3.Connection, identity_id: str, logins: Mapping[str, str | None]
) -> None:
    """Record the logins ``identity_id`` used (provider -> subject digest; {} for a guest)."""
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
        (f"logins:{identity_id}", json.dumps(dict(sorted(logins.items())))),
    )


def forget_identities(conn: sqlite3.Connection) -> None:
    """Forget the current identity, every remembered one and every recorded move."""
    conn.execute(
        "DELETE FROM meta WHERE key = 'identity_id' OR key GLOB 'logins:*' OR key GLOB 'moved:*'"
    )
