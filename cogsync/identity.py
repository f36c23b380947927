"""Who a client's data belongs to, and how it changes: `ClientIdentity`.

Rules:

- Before first contact a device's data belongs to a provisional owner; the first call that
  needs the server asks Cognito Identity (GetId) and attaches that data to the identity id.
- The store remembers each identity's kind: a guest, or the login providers it used (with
  a digest of each token's issuer and subject). An identity it never saw obtained (an old
  device file, an ``identity_id`` the app passed) counts as authenticated.
- Only a guest's data ever moves: at login its datasets move to the authenticated identity
  (kept as ``<name>.<guestIdentityId>`` where that identity already holds data). An
  authenticated identity's data, unsynced edits included, stays under it, out of sight of
  any other identity, and syncs when that identity is back on the device.
- Opening a device whose identity is authenticated with the logins of another user
  switches away at once (offline), so nothing of the previous user shows before contact.
- Whose data a call reaches is resolved on the store thread, in the call's transaction
  (`LocalView`, `LocalStore.resolve_owner`); every identity change updates the owner inside
  the transaction that moves the data. A call queued before a change follows the data the
  change moved, and a client (or process) whose identity another switched away from is
  refused with `IdentityConflictError`. Changes also hold the client's gate, exclusively,
  so no sync ever writes under a stale identity.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from cogsync._callbacks import maybe_await
from cogsync._gate import Gate
from cogsync._store_thread import RunBlocking
from cogsync.auth.cognito import CognitoIdentity
from cogsync.config import Config
from cogsync.exceptions import ConfigError, IdentityConflictError, UsageError
from cogsync.limits import merged_dataset_name, validate_name
from cogsync.remote.base import RemoteBackend
from cogsync.store.base import LocalStore

__all__ = [
    "ClientIdentity",
    "Logins",
    "Merged",
    "login_subjects",
    "matching_identity",
    "move_identity",
    "require_config",
]

Logins = Mapping[str, str] | Callable[[], "Mapping[str, str] | Awaitable[Mapping[str, str]]"]
"""Provider -> token, or a function (plain or coroutine) that returns fresh ones."""

Merged = dict[str, list[str]]
"""Dataset name -> the names it was merged into (``<name>.<guestIdentityId>``)."""


def require_config(config: Config | None) -> Config:
    """``config``, or `ConfigError` for a local-only client."""
    if config is None:
        raise ConfigError("this client has no Config; pass one to sync with a server")
    return config


class ClientIdentity:
    """A client's identity: its id, logins, owner of the local data, and backend.

    Args:
        config: the client's config (None: local-only, any server contact raises).
        store: the device's local store (owner changes are written to it).
        run: runs a blocking store call on the store's writer thread.
        gate: the client's sync gate; owner changes hold it exclusively.
        before_switch: awaited before data moves to another identity (stops push sync).
        logins: provider name -> token, switched to on first contact; or a function
            returning them, called at first contact and whenever they are refused.
        identity_id: an identity id the app already has; attached now if the store
            holds no unsynced changes of another identity.
        backend: a ready backend (tests); None builds a `GraphQLBackend` on first contact.
    """

    _identity_id: str | None
    _owner: str

    def __init__(
        self,
        config: Config | None,
        store: LocalStore,
        run: RunBlocking,
        gate: Gate,
        *,
        before_switch: Callable[[], Awaitable[None]],
        logins: Logins | None,
        identity_id: str | None,
        backend: RemoteBackend | None,
    ) -> None:
        self.lock = asyncio.Lock()
        """Held by every identity change (first contact, login, wipe)."""
        self._config, self._store, self._run, self._gate = config, store, run, gate
        self._before_switch = before_switch
        self._logins_source = logins if callable(logins) else None
        self._logins = {} if callable(logins) else dict(logins or {})  # for first contact
        self._logins_pending = bool(self._logins) or self._logins_source is not None
        self._identity_logins: dict[str, str] = {}  # logins of the current identity, if known
        self._set_owner(_open_identity(store, identity_id, self._logins))
        self._backend = backend
        self._cognito: CognitoIdentity | None = None
        self._limits_learned = False

    @property
    def identity_id(self) -> str | None:
        """The identity id, once known; None before first contact."""
        return self._identity_id

    @property
    def owner(self) -> str:
        """Whose data the client believes it reads and writes (provisional until known).

        Store calls resolve it there (`LocalStore.resolve_owner`): an identity change
        updates it in the transaction that moves the data.
        """
        return self._owner

    @property
    def backend(self) -> RemoteBackend | None:
        """The backend as the current identity, once built."""
        return self._backend

    @property
    def needs_contact(self) -> bool:
        """Whether the identity id is unknown or logins wait to be switched to."""
        return self._identity_id is None or self._logins_pending

    def cognito(self) -> CognitoIdentity:
        """The Cognito identity of the current logins (built on first use)."""
        if self._cognito is None:
            self._cognito = CognitoIdentity(
                require_config(self._config),
                logins=self._identity_logins or None,
                identity_id=self._identity_id,
                refresh_logins=self._refresher(),
            )
        return self._cognito

    def synced_owner(self) -> str:
        """The owner a sync may act for (blocking: run it on the store thread).

        Raises:
            IdentityConflictError: another client moved or switched this identity's data
                away; the backend speaks for an identity the file no longer has.
        """
        owner = self._store.resolve_owner(self._owner)
        if owner != self._owner:
            raise IdentityConflictError(
                f"another client moved this device's data from {self._owner} to {owner}: "
                "close this client and open the file again to sync"
            )
        return owner

    async def connect(self) -> RemoteBackend:
        """Make sure the identity is known and a backend exists; return the backend."""
        async with self.lock:
            if self.needs_contact:
                await self._run(self._adopt)
            if self._logins_pending:
                if self._logins_source is not None and not self._logins:
                    self._logins = await self._fresh_logins()
                await self._switch(self._logins, self._logins_source)
            if self._identity_id is None:
                identity_id = await self.cognito().get_identity_id()
                async with self._gate.exclusive():
                    await self._run(self._change, self._owner, identity_id, "attach", {})
            if self._backend is None:
                self._backend = _graphql_backend(require_config(self._config), self.cognito())
            if not self._limits_learned:
                await self._learn_limits(self._backend)
            return self._backend

    async def login(self, logins: Logins) -> tuple[str, Merged]:
        """Switch to the identity of ``logins``; its id and the guest datasets merged."""
        async with self.lock:
            await self._run(self._adopt)
            if callable(logins):
                return await self._switch(await _resolve(logins), logins)
            return await self._switch(dict(logins), None)

    def _refresher(self) -> Callable[[], Awaitable[dict[str, str]]] | None:
        return None if self._logins_source is None else self._fresh_logins

    async def _fresh_logins(self) -> dict[str, str]:
        """Logins from the app's function (called again whenever they are refused)."""
        assert self._logins_source is not None
        return await _resolve(self._logins_source)

    def forget(self) -> RemoteBackend | None:
        """Drop identity, logins and backend (after a wipe); the backend, for closing."""
        backend, self._backend = self._backend, None
        self._set_owner(None)
        self._cognito, self._logins, self._identity_logins = None, {}, {}
        self._logins_pending, self._logins_source = False, None
        return backend

    def _set_owner(self, identity_id: str | None) -> None:
        self._identity_id = identity_id
        self._owner = identity_id or self._store.provisional_owner()

    def _adopt(self) -> None:
        """Follow a move another client made: take the identity the data moved to (store thread)."""
        owner = self._store.resolve_owner(self._owner)
        if owner != self._owner:
            self._set_owner(owner)
            self._cognito = None

    def _change(self, old: str, new: str, mode: str, logins: dict[str, str | None]) -> Merged:
        """Move the data of ``old`` to ``new`` and make ``new`` the owner (store thread).

        One transaction: no call of this client or another process sees a half-made
        change, and calls queued behind it resolve to ``new``.
        """
        store = self._store
        with store.transaction():
            current = store.resolve_owner(old)
            if current != old:
                if mode == "attach" and not logins:  # another process made first contact
                    self._set_owner(current)
                    return {}
                raise IdentityConflictError(
                    f"another client switched this device to {current} meanwhile: "
                    "close this client and open the file again"
                )
            merged = move_identity(store, old, new, mode)
            store.remember_identity(new, logins)
            self._set_owner(new)
        return merged

    async def _learn_limits(self, backend: RemoteBackend) -> None:
        """Adopt the limits the server announces, so both sides enforce the same ones."""
        info = await backend.server_info()
        self._store.limits = dataclasses.replace(
            self._store.limits,
            max_datasets=info.max_datasets,
            max_records=info.max_records,
            max_dataset_bytes=info.max_dataset_bytes,
            max_key_bytes=info.max_key_bytes,
        )
        self._limits_learned = True

    async def _switch(
        self, logins: dict[str, str], source: Callable[[], Any] | None
    ) -> tuple[str, Merged]:
        """Switch to ``logins`` (``source``: the function that made them, if any)."""
        config = require_config(self._config)
        refresh = None if source is None else lambda: _resolve(source)
        fresh = CognitoIdentity(config, logins=logins, refresh_logins=refresh)
        new_id = await fresh.get_identity_id()
        new_backend = _graphql_backend(config, fresh)
        old_owner = self._owner
        try:
            mode = await self._mode(old_owner, new_id, new_backend)
            await self._before_switch()
            async with self._gate.exclusive():
                subjects = login_subjects(logins)
                merged = await self._run(self._change, old_owner, new_id, mode, subjects)
        except BaseException:
            await new_backend.close()
            raise
        old_backend = self._backend
        self._backend, self._cognito, self._logins_source = new_backend, fresh, source
        self._logins, self._identity_logins, self._logins_pending = (
            dict(logins),
            dict(logins),
            False,
        )
        if old_backend is not None:
            await old_backend.close()
        return new_id, merged

    async def _mode(self, old: str, new_id: str, new_backend: RemoteBackend) -> str:
        """How the data of ``old`` changes hands when ``new_id`` logs in (see `move_identity`)."""
        if self._identity_id is None:
            return "attach"
        if new_id == old:
            return "same"
        if (await self._run(self._store.known_identities)).get(old) != {}:
            return "switch"  # authenticated (or unknown): its data stays its own
        remote = await new_backend.list_datasets()
        local = await self._run(self._store.list_datasets, new_id)
        has_data = any(not d.deleted for d in remote) or bool(local)
        return "merge" if has_data else "move"


async def _resolve(source: Callable[[], Any]) -> dict[str, str]:
    """Call a logins function (plain or coroutine) and check what it returned."""
    logins = await maybe_await(source())
    if (
        not isinstance(logins, Mapping)
        or not logins
        or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in logins.items())
    ):
        raise UsageError("the logins function must return a dict of provider names to tokens")
    return dict(logins)


def _open_identity(
    store: LocalStore, identity_id: str | None, logins: dict[str, str]
) -> str | None:
    """The identity the client starts as (before any contact with the server).

    With ``logins`` of another user than the device's authenticated identity, the device
    switches at once: to an identity that used those logins here before, else to none
    (provisional) until first contact names it.
    """
    known = _attach_given(store, identity_id)
    if identity_id is not None or not logins or known is None:
        return known
    remembered = store.known_identities()
    if remembered.get(known) == {}:
        return known  # a guest: its data moves to the logins' identity on first contact
    mine = matching_identity(remembered, login_subjects(logins))
    if mine != known:
        store.set_identity_id(mine)
    return mine


def _attach_given(store: LocalStore, identity_id: str | None) -> str | None:
    """The store's identity id, after attaching ``identity_id`` (the app's) if given."""
    known = store.identity_id()
    if identity_id is not None and identity_id != known:
        if known is not None and store.has_unsynced_changes():
            raise UsageError(
                f"this device file holds unsynced changes of identity {known}: sync them "
                "or call wipe_data() before opening it with another identity_id"
            )
        store.attach_identity(identity_id)
        known = identity_id
    return known


def login_subjects(logins: Mapping[str, str]) -> dict[str, str | None]:
    """Provider -> a digest of its token's issuer and subject (None: not a JWT with a subject).

    Lets a device recognise a returning user offline; the server still verifies the token.
    """
    return {provider: _subject_digest(token) for provider, token in logins.items()}


def _subject_digest(token: str) -> str | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:  # (binascii.Error, UnicodeDecodeError and JSONDecodeError are)
        return None
    subject = claims.get("sub") if isinstance(claims, dict) else None
    if not isinstance(subject, str) or not subject:
        return None
    return hashlib.sha256(f"{claims.get('iss')}\0{subject}".encode()).hexdigest()


def matching_identity(
    remembered: Mapping[str, Mapping[str, str | None]], subjects: Mapping[str, str | None]
) -> str | None:
    """The remembered identity whose logins name the same subject as ``subjects``, if any."""
    for identity, logins in remembered.items():
        if any(d is not None and logins.get(p) == d for p, d in subjects.items()):
            return identity
    return None


def _graphql_backend(config: Config, cognito: CognitoIdentity) -> RemoteBackend:
    from cogsync.remote.graphql import GraphQLBackend  # gql and aiohttp load on first contact

    return GraphQLBackend(config, cognito)


def move_identity(store: LocalStore, old: str, new: str, mode: str) -> Merged:
    """Move the device's data from owner ``old`` to ``new`` (runs on the store thread).

    ``mode``: "attach" (first contact: provisional data moves), "same" or "switch" (the
    data stays where it is: ``old`` is ``new``, or authenticated), "move" (a guest's
    datasets move as they are) or "merge" (they are renamed ``<name>.<old>``; the result
    names them). Guest moves are recorded, so calls still made as ``old`` follow them.
    """
    if mode == "attach":
        store.attach_identity(new)
        return {}
    if mode in ("same", "switch"):
        store.set_identity_id(new)
        return {}
    plan = []
    for state in store.list_datasets(old):
        if state.deleted_pending:
            continue
        target = state.name
        if mode == "merge":
            target = merged_dataset_name(state.name, old, store.limits)
        plan.append((state.name, validate_name(target, store.limits)))
    taken = {s.name for s in store.list_datasets(new)}
    clash = [target for _, target in plan if target in taken]
    if clash:
        raise UsageError(
            f"cannot merge: datasets {clash} already exist for identity {new} on this device"
        )
    for name, target in plan:
        store.rename_dataset(old, name, new, target)
    store.set_identity_id(new, moved_from=old)
    return {name: [target] for name, target in plan} if mode == "merge" else {}
