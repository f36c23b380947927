"""Who a client's data belongs to, and how it changes: `ClientIdentity`.

Before first contact a device's data belongs to a provisional owner; the first call that
needs the server asks Cognito Identity (GetId) and attaches that data to the identity id.
Logins switch identities: a guest's datasets move to the authenticated identity (kept as
``<name>.<guestIdentityId>`` where that identity already holds data), an authenticated
identity's data stays under it. Every change of owner happens under the client's gate,
exclusively, so no sync ever writes under a stale identity.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable

from cogsync._gate import Gate
from cogsync._store_thread import RunBlocking
from cogsync.auth.cognito import CognitoIdentity
from cogsync.config import Config
from cogsync.exceptions import ConfigError, UsageError
from cogsync.limits import merged_dataset_name, validate_name
from cogsync.remote.base import RemoteBackend
from cogsync.store.base import LocalStore

__all__ = ["ClientIdentity", "Merged", "move_identity", "require_config"]

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
        logins: provider name -> token, switched to on first contact.
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
        logins: dict[str, str] | None,
        identity_id: str | None,
        backend: RemoteBackend | None,
    ) -> None:
        self.lock = asyncio.Lock()
        """Held by every identity change (first contact, login, wipe)."""
        self._config, self._store, self._run, self._gate = config, store, run, gate
        self._before_switch = before_switch
        self._logins = dict(logins or {})  # switched to on first contact
        self._logins_pending = bool(self._logins)
        self._identity_logins: dict[str, str] = {}  # logins of the current identity, if known
        self._set_owner(_attach_given(store, identity_id))
        self._backend = backend
        self._cognito: CognitoIdentity | None = None
        self._limits_learned = False

    @property
    def identity_id(self) -> str | None:
        """The identity id, once known; None before first contact."""
        return self._identity_id

    @property
    def owner(self) -> str:
        """Whose data in the store the client reads and writes (provisional until known)."""
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
            )
        return self._cognito

    async def connect(self) -> RemoteBackend:
        """Make sure the identity is known and a backend exists; return the backend."""
        async with self.lock:
            if self._logins_pending:
                await self._switch(self._logins)
            if self._identity_id is None:
                identity_id = await self.cognito().get_identity_id()
                async with self._gate.exclusive():
                    await self._run(self._store.attach_identity, identity_id)
                    self._set_owner(identity_id)
            if self._backend is None:
                self._backend = _graphql_backend(require_config(self._config), self.cognito())
            if not self._limits_learned:
                await self._learn_limits(self._backend)
            return self._backend

    async def login(self, logins: dict[str, str]) -> tuple[str, Merged]:
        """Switch to the identity of ``logins``; its id and the guest datasets merged."""
        async with self.lock:
            return await self._switch(logins)

    def forget(self) -> RemoteBackend | None:
        """Drop identity, logins and backend (after a wipe); the backend, for closing."""
        backend, self._backend = self._backend, None
        self._set_owner(None)
        self._cognito, self._logins, self._identity_logins = None, {}, {}
        self._logins_pending = False
        return backend

    def _set_owner(self, identity_id: str | None) -> None:
        self._identity_id = identity_id
        self._owner = identity_id or self._store.provisional_owner()

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

    async def _switch(self, logins: dict[str, str]) -> tuple[str, Merged]:
        config = require_config(self._config)
        fresh = CognitoIdentity(config, logins=logins)
        new_id = await fresh.get_identity_id()
        new_backend = _graphql_backend(config, fresh)
        old_owner = self._owner
        merged: Merged = {}
        try:
            if self._identity_id is None:
                mode = "attach"
            elif new_id == old_owner:
                mode = "same"
            elif self._identity_logins:
                mode = "switch"
            else:
                remote = await new_backend.list_datasets()
                local = await self._run(self._store.list_datasets, new_id)
                has_data = any(not d.deleted for d in remote) or bool(local)
                mode = "merge" if has_data else "move"
            await self._before_switch()
            async with self._gate.exclusive():
                merged = await self._run(move_identity, self._store, old_owner, new_id, mode)
                self._set_owner(new_id)
        except BaseException:
            await new_backend.close()
            raise
        old_backend = self._backend
        self._backend, self._cognito = new_backend, fresh
        self._logins, self._identity_logins, self._logins_pending = (
            dict(logins),
            dict(logins),
            False,
        )
        if old_backend is not None:
            await old_backend.close()
        return new_id, merged


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


def _graphql_backend(config: Config, cognito: CognitoIdentity) -> RemoteBackend:
    from cogsync.remote.graphql import GraphQLBackend  # gql and aiohttp load on first contact

    return GraphQLBackend(config, cognito)


def move_identity(store: LocalStore, old: str, new: str, mode: str) -> Merged:
    """Move the device's data from owner ``old`` to ``new`` (runs on the store thread).

    ``mode``: "attach" (first contact), "same" or "switch" (the data stays where it is),
    "move" (a guest's datasets move as they are) or "merge" (they are renamed
    ``<name>.<old>``; the result names them).
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
    store.set_identity_id(new)
    return {name: [target] for name, target in plan} if mode == "merge" else {}
