"""The blocking facade: `Client` and `Dataset` over the async core, and their `Portal`.

`Client` and `Dataset` are thin facades: every method submits a coroutine of the
`AsyncClient` (or `AsyncDataset`) to a `Portal` -- a private event-loop thread -- and
waits for its result. Callbacks the app passes run in a worker thread (`off_loop`), so
they may call the `Client` again without blocking the loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Collection, Coroutine, Mapping
from types import TracebackType
from typing import Any, TypeVar, Unpack, overload

from pydantic import BaseModel

from cogsync.client import AsyncClient, ClientOptions, DatasetsMerged, OnChange
from cogsync.config import Config
from cogsync.dataset import AsyncDataset
from cogsync.engine.conflicts import last_writer_wins
from cogsync.events import ChangeEvent, Subscription
from cogsync.exceptions import UsageError
from cogsync.identity import Logins
from cogsync.limits import Limits
from cogsync.models import DatasetMetadata, Record, SyncResult
from cogsync.status import ClientStatus, DatasetStatus
from cogsync.typed.blocking import TypedDataset, TypedRecords
from cogsync.typed.dataset import RecordModel

__all__ = ["Client", "Dataset", "Portal", "off_loop", "off_loop_all"]

T = TypeVar("T")
_M = TypeVar("_M", bound=BaseModel)
_I = TypeVar("_I", bound=BaseModel)


class Portal:
    """Runs coroutines on an event loop owned by a daemon thread."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="cogsync-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The portal's event loop."""
        return self._loop

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the portal's loop and return its result (blocking)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise UsageError(
                "cogsync.Client blocks; it cannot be called from inside a running event loop. "
                "Use cogsync.AsyncClient in async code."
            )
        if not self._thread.is_alive():
            coro.close()
            raise UsageError("this client is closed; create a new one")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        """Stop the loop and join its thread."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        if not self._loop.is_closed():  # callbacks' worker threads end here too
            self._loop.run_until_complete(self._loop.shutdown_default_executor())
        self._loop.close()


def off_loop(callback: Any) -> Any:
    """Run a blocking-API callback in a worker thread, so it may call the `Client` again."""
    if callback is None or asyncio.iscoroutinefunction(callback) or not callable(callback):
        return callback

    async def call(*args: Any) -> Any:
        return await asyncio.to_thread(callback, *args)

    return call


def off_loop_all(callbacks: dict[str, Any]) -> dict[str, Any]:
    """`off_loop` applied to every callback of a ``name=callback`` mapping."""
    return {name: off_loop(cb) for name, cb in callbacks.items()}


class Client:
    """The blocking facade of `AsyncClient`: same arguments, same methods, no ``await``.

    It runs an `AsyncClient` on a private event-loop thread; use `AsyncClient` from async
    code (calling a `Client` inside a running event loop raises `UsageError`). Callbacks
    run in a worker thread, so they may read and write datasets; they must not call
    `synchronize`, `login` or `wipe_data` (the sync that called them is still running).
    """

    def __init__(self, config: Config | None = None, **options: Unpack[ClientOptions]) -> None:
        self._portal = Portal()
        if callable(options.get("logins")):  # the app's function runs off the loop
            options = {**options, "logins": off_loop(options["logins"])}
        try:
            self._async = self._portal.call(_construct(config, options))
        except BaseException:
            self._portal.close()
            raise

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop push sync, close connections and the local store."""
        if self._portal.loop.is_closed():
            return
        try:
            self._portal.call(self._async.close())
        finally:
            self._portal.close()

    @property
    def async_client(self) -> AsyncClient:
        """The underlying `AsyncClient`."""
        return self._async

    @property
    def limits(self) -> Limits:
        """The limits this client enforces locally."""
        return self._async.limits

    @property
    def device_id(self) -> str:
        """This device's id."""
        return self._async.device_id

    @property
    def identity_id(self) -> str:
        """The identity id (obtained from Cognito Identity once, then cached)."""
        return self._portal.call(self._async.get_identity_id())

    @overload
    def dataset(self, name: str) -> Dataset: ...
    @overload
    def dataset(self, name: str, model: type[_M]) -> TypedDataset[_M]: ...
    @overload
    def dataset(self, name: str, model: RecordModel[_I]) -> TypedRecords[_I]: ...

    def dataset(
        self, name: str, model: type[_M] | RecordModel[_I] | None = None
    ) -> Dataset | TypedDataset[_M] | TypedRecords[_I]:
        """Open (creating locally if needed) the dataset ``name``.

        With ``model`` (a pydantic model class, or ``record_model(Item)``), the dataset is
        read and written as models: see `TypedDataset`.
        """
        if model is None:
            return Dataset(self._portal.call(self._async.dataset(name)), self._portal)
        if isinstance(model, RecordModel):
            records = self._portal.call(self._async.dataset(name, model))
            return TypedRecords(records, self._portal.call, off_loop)
        typed = self._portal.call(self._async.dataset(name, model))
        return TypedDataset(typed, self._portal.call, off_loop)

    open_or_create_dataset = dataset

    def list_datasets(self) -> list[DatasetMetadata]:
        """The datasets kept on this device."""
        return self._portal.call(self._async.list_datasets())

    def refresh_dataset_metadata(self) -> list[DatasetMetadata]:
        """Fetch the server's dataset list (including datasets never opened here)."""
        return self._portal.call(self._async.refresh_dataset_metadata())

    def login(self, logins: Logins, *, on_datasets_merged: DatasetsMerged | None = None) -> str:
        """Switch to an authenticated identity; see `AsyncClient.login`."""
        merged = off_loop(on_datasets_merged)
        coro = self._async.login(off_loop(logins), on_datasets_merged=merged)
        return self._portal.call(coro)

    def synchronize(self, name: str, **callbacks: Any) -> SyncResult:
        """Sync one dataset; see `AsyncClient.synchronize`."""
        return self._portal.call(self._async.synchronize(name, **off_loop_all(callbacks)))

    def synchronize_all(self, **callbacks: Any) -> dict[str, SyncResult]:
        """Sync every dataset; name -> `SyncResult` (see `AsyncClient.synchronize_all`)."""
        return self._portal.call(self._async.synchronize_all(**off_loop_all(callbacks)))

    def synchronize_on_connectivity(self, name: str, **callbacks: Any) -> SyncResult | None:
        """Sync now if reachable, else in the background once the server is back."""
        coro = self._async.synchronize_on_connectivity(name, **off_loop_all(callbacks))
        return self._portal.call(coro)

    def start_push_sync(
        self,
        on_change: OnChange | None = None,
        datasets: Collection[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Keep a subscription open and sync datasets changed on other devices."""
        coro = self._async.start_push_sync(off_loop(on_change), datasets, **kwargs)
        self._portal.call(coro)

    def stop_push_sync(self) -> None:
        """Close the push-sync subscription."""
        self._portal.call(self._async.stop_push_sync())

    def start_auto_sync(self, **options: Any) -> None:
        """Sync in the background (see `AsyncClient.start_auto_sync` for the options)."""
        self._portal.call(self._async.start_auto_sync(**off_loop_all(options)))

    def stop_auto_sync(self) -> None:
        """Stop background sync; a running sync finishes first."""
        self._portal.call(self._async.stop_auto_sync())

    def status(self) -> ClientStatus:
        """Whether the server answers, whether auto sync runs, and each dataset's state."""
        return self._portal.call(self._async.status())

    def on_change(self, callback: Callable[[ChangeEvent], Any]) -> Subscription:
        """Call ``callback(event)`` (in a worker thread) for every `ChangeEvent`."""
        return self._portal.call(_on_loop(self._async.on_change, off_loop(callback)))

    def on_status(self, callback: Callable[[ClientStatus], Any]) -> Subscription:
        """Call ``callback(status)`` (in a worker thread) whenever a status field changes."""
        return self._portal.call(_on_loop(self._async.on_status, off_loop(callback)))

    def wipe_data(self, *, force: bool = False) -> None:
        """Forget the identity and local data; refuses with unsynced changes unless ``force``."""
        self._portal.call(self._async.wipe_data(force=force))


async def _construct(config: Config | None, options: ClientOptions) -> AsyncClient:
    return AsyncClient(config, **options)


async def _on_loop(register: Callable[[Any], Subscription], callback: Any) -> Subscription:
    return register(callback)


class Dataset:
    """The blocking twin of `AsyncDataset`, returned by `Client.dataset`."""

    def __init__(self, inner: AsyncDataset, portal: Portal) -> None:
        self._inner = inner
        self._portal = portal
        self.name = inner.name

    def __repr__(self) -> str:
        return f"<Dataset {self.name!r}>"

    def put(self, key: str, value: str) -> None:
        """Set ``key`` to ``value`` (a str; store JSON as text)."""
        self._portal.call(self._inner.put(key, value))

    def put_all(self, values: Mapping[str, str]) -> None:
        """Set several records in one transaction: all are written or none."""
        self._portal.call(self._inner.put_all(values))

    def remove(self, key: str) -> None:
        """Remove ``key`` (synced to other devices as a removal)."""
        self._portal.call(self._inner.remove(key))

    def get(self, key: str) -> str | None:
        """The value of ``key``, or None if absent or removed."""
        return self._portal.call(self._inner.get(key))

    def record(self, key: str) -> Record | None:
        """The full `Record` for ``key``, or None."""
        return self._portal.call(self._inner.record(key))

    def get_all(self) -> dict[str, str]:
        """All live records as a dict of key to value."""
        return self._portal.call(self._inner.get_all())

    def size_in_bytes(self) -> int:
        """UTF-8 bytes of keys and values of the live records."""
        return self._portal.call(self._inner.size_in_bytes())

    def delete(self) -> None:
        """Delete the whole dataset locally; the next sync deletes it on the server too."""
        self._portal.call(self._inner.delete())

    def synchronize(
        self,
        on_conflict: Callable[..., Any] = last_writer_wins,
        on_dataset_deleted: Callable[[str], Any] | None = None,
        on_datasets_merged: Callable[[str, list[str]], Any] | None = None,
        **options: Any,
    ) -> SyncResult:
        """Reconcile with the server; see `AsyncClient.synchronize` for the callbacks.

        Callbacks run in a worker thread, so they may read and write datasets (but not
        start another sync, login or wipe).
        """
        coro = self._inner.synchronize(
            off_loop(on_conflict),
            off_loop(on_dataset_deleted),
            off_loop(on_datasets_merged),
            **off_loop_all(options),
        )
        return self._portal.call(coro)

    def synchronize_on_connectivity(self, **callbacks: Any) -> SyncResult | None:
        """Sync now if reachable; otherwise schedule a sync for when the server is back."""
        coro = self._inner.synchronize_on_connectivity(**off_loop_all(callbacks))
        return self._portal.call(coro)

    def status(self) -> DatasetStatus:
        """This dataset's `DatasetStatus`."""
        return self._portal.call(self._inner.status())
