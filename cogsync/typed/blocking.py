"""`TypedDataset` and `TypedRecords`: the blocking twins of the async typed views.

They run the async views' coroutines through the client's portal (``call``) and hand
callbacks through ``wrap`` (the blocking client runs them off its event loop), so nothing
is implemented twice.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from cogsync.merge import merge_json
from cogsync.models import SyncResult
from cogsync.typed.dataset import AsyncTypedDataset, AsyncTypedRecords, record_model

__all__ = ["Call", "TypedDataset", "TypedRecords"]

M = TypeVar("M", bound=BaseModel)
I = TypeVar("I", bound=BaseModel)  # noqa: E741
T = TypeVar("T")


class Call(Protocol):
    """Runs a coroutine to completion and returns its result (`cogsync.blocking.Portal.call`)."""

    def __call__(self, coro: Coroutine[Any, Any, T], /) -> T: ...


class _Blocking:
    def __init__(
        self,
        inner: AsyncTypedDataset[Any] | AsyncTypedRecords[Any],
        call: Call,
        wrap: Callable[[Any], Any],
    ) -> None:
        self._inner = inner
        self._call = call
        self._wrap = wrap
        self.name = inner.name

    def synchronize(
        self, on_conflict: Callable[..., Any] = merge_json, **callbacks: Any
    ) -> SyncResult:
        """Reconcile with the server, merging JSON members (`cogsync.merge_json`) by default.

        Callbacks run in a worker thread (see `cogsync.Dataset.synchronize`).
        """
        wrapped = {name: self._wrap(cb) for name, cb in callbacks.items()}
        return self._call(self._inner.synchronize(self._wrap(on_conflict), **wrapped))


class TypedDataset(_Blocking, Generic[M]):
    """A dataset read and written as one ``M`` (from ``Client.dataset(name, model=M)``).

    Each top-level field is one record holding the field's JSON. See `AsyncTypedDataset`.
    """

    record_model = staticmethod(record_model)

    def __init__(self, inner: AsyncTypedDataset[M], call: Call, wrap: Callable[[Any], Any]):
        super().__init__(inner, call, wrap)
        self._typed = inner
        self.model = inner.model

    def __repr__(self) -> str:
        return f"<TypedDataset {self.name!r} of {self.model.__name__}>"

    def get(self) -> M:
        """The dataset as an ``M``; raises `RecordValidationError` if stored fields are invalid."""
        return self._call(self._typed.get())

    def put(self, value: M, *, overwrite_invalid: bool = False) -> None:
        """Store ``value``, writing only the fields whose JSON changed (one transaction)."""
        self._call(self._typed.put(value, overwrite_invalid=overwrite_invalid))


class TypedRecords(_Blocking, Generic[I]):
    """A dataset as a keyed collection of ``I`` models. See `AsyncTypedRecords`."""

    def __init__(self, inner: AsyncTypedRecords[I], call: Call, wrap: Callable[[Any], Any]):
        super().__init__(inner, call, wrap)
        self._typed = inner
        self.model = inner.model

    def __repr__(self) -> str:
        return f"<TypedRecords {self.name!r} of {self.model.__name__}>"

    def get(self, key: str) -> I | None:
        """The item stored under ``key``, or None."""
        return self._call(self._typed.get(key))

    def items(self) -> dict[str, I]:
        """Every item by key."""
        return self._call(self._typed.items())

    def put(self, item: I, *, overwrite_invalid: bool = False) -> None:
        """Store ``item`` under its key (written only if its JSON changed)."""
        self._call(self._typed.put(item, overwrite_invalid=overwrite_invalid))

    def remove(self, key: str) -> None:
        """Remove the item stored under ``key``."""
        self._call(self._typed.remove(key))
