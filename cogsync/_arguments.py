"""The checks of `AsyncClient`'s arguments and the opening of its device file."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path

from cogsync.config import Config
from cogsync.exceptions import ConfigError, UsageError
from cogsync.limits import Limits
from cogsync.store.base import LocalStore

__all__ = ["check_arguments", "open_store"]


def check_arguments(
    config: object, db_path: object, logins: object, identity_id: object, device_id: object
) -> None:
    """Refuse constructor and `login` arguments of the wrong shape (`UsageError`, `ConfigError`)."""
    if config is not None and not isinstance(config, Config):
        raise ConfigError(
            f"config must be a cogsync.Config, got {type(config).__name__}: "
            "use cogsync.Config.load('cogsync.json')"
        )
    if db_path is not None and not isinstance(db_path, str | os.PathLike):
        raise UsageError(f"db_path must be a file path, got {type(db_path).__name__}")
    if (
        logins is not None
        and not callable(logins)
        and (
            not isinstance(logins, Mapping)
            or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in logins.items())
        )
    ):
        raise UsageError(
            "logins must map provider names to token strings, or be a function returning that"
        )
    for name, value in (("identity_id", identity_id), ("device_id", device_id)):
        if value is not None and (not isinstance(value, str) or not value):
            raise UsageError(f"{name} must be a non-empty str")


def open_store(
    db_path: str | os.PathLike[str] | None,
    limits: Limits,
    device_id: str | None = None,
    store: LocalStore | None = None,
) -> LocalStore:
    """``store``, or the device file at ``db_path`` opened with SQLite (`ConfigError` if not).

    An explicit ``device_id`` is recorded in a new file, so local writes carry the id pushes
    are made under; an existing file or a given ``store`` must already have it.
    """
    if store is not None:
        _check_device_id(store, device_id)
        return store
    from cogsync.store.sqlite import SQLiteStore

    if db_path is None:
        raise ConfigError("Client needs db_path=... (the device's SQLite file)")
    try:
        opened = SQLiteStore(Path(db_path), limits=limits, device_id=device_id)
    except (sqlite3.Error, OSError) as exc:
        raise ConfigError(f"cannot open the device file {db_path}: {exc}") from exc
    try:
        _check_device_id(opened, device_id)
    except ConfigError:
        opened.close()
        raise
    return opened


def _check_device_id(store: LocalStore, device_id: str | None) -> None:
    if device_id and device_id != store.device_id():
        raise ConfigError(
            f"device_id {device_id!r} differs from the device file's own "
            f"{store.device_id()!r}: pass that id, or none, or a new file"
        )
