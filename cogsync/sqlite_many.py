"""Many rows per SQLite statement, for writer threads beside a busy event loop.

`sqlite3`'s ``executemany`` releases the GIL around each row's step and takes it back
after. A writer thread then waits for the GIL once per row, for up to the interpreter's
switch interval (5 ms) whenever another thread is computing. Measured with 1,024 rows of
1 KB beside a thread computing: ``executemany`` took 3.6 s; 256 rows per statement
took 38 ms. With nothing else running it is 4.3 ms against 3.8 ms.

`insert_many` runs an ``INSERT ... VALUES (?, ...)`` statement with up to 256 rows per
step. `execute_among` runs a statement over a ``key IN (...)`` list, up to 512 keys per
step. Both use a few chunk sizes, powers of two, so ``sqlite3``'s statement cache keeps
them. Both bind every value, so NUL characters are kept; ``json_each`` would cut strings
at them.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Iterable, Sequence
from itertools import chain, islice
from typing import Any

__all__ = ["execute_among", "insert_many"]

_ROWS = 256
_KEYS = 512
_VALUES = re.compile(r"VALUES\s*\(([^()]*)\)")  # one row: parameters and literals
_MIN_VARIABLES = 999  # SQLite's limit before 3.32; later ones allow 32,766


def insert_many(conn: sqlite3.Connection, statement: str, rows: Iterable[Sequence[Any]]) -> None:
    """Run ``statement``, an INSERT with one ``VALUES (?, ...)`` row, once for each of
    ``rows`` in order (later rows see earlier ones, as with ``executemany``)."""
    width = _width(statement)
    most = _chunk(conn, width, _ROWS)
    stream = iter(rows)
    while chunk := list(islice(stream, most)):
        _insert_chunk(conn, statement, chunk)


def _insert_chunk(conn: sqlite3.Connection, statement: str, chunk: list[Sequence[Any]]) -> None:
    start = 0
    while start < len(chunk):
        size = 1 << ((len(chunk) - start).bit_length() - 1)  # the largest power of two left
        part = chunk[start : start + size]
        conn.execute(_expanded(statement, size), list(chain.from_iterable(part)))
        start += size


def execute_among(
    conn: sqlite3.Connection, template: str, head: Sequence[Any], keys: Sequence[str]
) -> None:
    """Run ``template`` (a statement with ``{marks}`` where a ``key IN ({marks})`` list
    goes) once per chunk of ``keys``, each bound after the ``head`` parameters."""
    most = _chunk(conn, 1, _KEYS, reserved=len(head))
    start = 0
    while start < len(keys):
        size = 1 << (min(len(keys) - start, most).bit_length() - 1)
        part = keys[start : start + size]
        conn.execute(template.format(marks=_marks(size)), (*head, *part))
        start += size


def _chunk(conn: sqlite3.Connection, width: int, most: int, reserved: int = 0) -> int:
    try:
        limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    except (AttributeError, sqlite3.Error):  # no getlimit: assume the oldest limit
        limit = _MIN_VARIABLES
    fits = max(1, (limit - reserved) // width)
    return 1 << (min(most, fits).bit_length() - 1)


@functools.lru_cache(maxsize=64)
def _width(statement: str) -> int:
    match = _VALUES.search(statement)
    if match is None or "?" not in match.group(1):
        raise ValueError("insert_many needs an INSERT with one VALUES (?, ...) row")
    return match.group(1).count("?")


@functools.lru_cache(maxsize=256)
def _expanded(statement: str, rows: int) -> str:
    if rows == 1:
        return statement
    match = _VALUES.search(statement)
    assert match is not None  # _width checked it
    one = f"({match.group(1)})"
    return f"{statement[: match.start()]}VALUES {', '.join([one] * rows)}{statement[match.end() :]}"


@functools.lru_cache(maxsize=16)
def _marks(count: int) -> str:
    return ", ".join("?" * count)
