"""`AsyncTypedDataset` and `AsyncTypedRecords`: a dataset read and written as pydantic models.

Two shapes over one plain `AsyncDataset`:

- `AsyncTypedDataset[M]`: the whole dataset is one ``M``; each top-level field is one
  record holding the field's JSON, so devices edit fields independently and a conflict
  concerns one field (its JSON object value, if any, is merged by `cogsync.merge_json`).
- `AsyncTypedRecords[I]` (from ``model=record_model(I)``): a keyed collection, one record
  per ``I`` under the item's id, each item's JSON merged member by member.

A write validates first and writes only the records whose JSON changed. A stored value
that does not validate (another app version wrote it) raises `RecordValidationError` and
is never overwritten unless asked (``overwrite_invalid=True``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from cogsync.dataset import AsyncDataset
from cogsync.exceptions import InvalidKeyError, InvalidValueError
from cogsync.merge import merge_json, same_json
from cogsync.models import Record, SyncResult
from cogsync.typed.schema import (
    VERSION_KEY,
    Decoded,
    check_value,
    decode,
    json_text,
    model_version,
    stored_version,
    validation_failure,
)

__all__ = ["AsyncTypedDataset", "AsyncTypedRecords", "RecordModel", "record_model", "typed_view"]

M = TypeVar("M", bound=BaseModel)
I = TypeVar("I", bound=BaseModel)  # noqa: E741


def _values(records: Mapping[str, Record]) -> dict[str, str | None]:
    return {k: r.value for k, r in records.items() if r.value is not None}


@dataclass(frozen=True)
class RecordModel(Generic[I]):
    """``model=`` for `AsyncClient.dataset` that asks for a keyed collection of ``item``."""

    item: type[I]
    key: str = "id"


def record_model(item: type[I], *, key: str = "id") -> RecordModel[I]:
    """Ask for a dataset as a keyed collection of ``item`` models (key: the ``key`` field).

    Use as ``client.dataset(name, model=cogsync.TypedDataset.record_model(Item))``.
    """
    if key not in item.model_fields:
        raise InvalidValueError(f"{item.__name__} has no field {key!r} to key its records by")
    return RecordModel(item, key)


class _Typed:
    """What both shapes share: the dataset, and its sync with `merge_json` by default."""

    def __init__(self, dataset: AsyncDataset) -> None:
        self.dataset = dataset
        self.name = dataset.name

    async def synchronize(
        self, on_conflict: Callable[..., Any] = merge_json, **callbacks: Any
    ) -> SyncResult:
        """Reconcile with the server, merging JSON members (`cogsync.merge_json`) by default.

        Takes the callbacks of `AsyncDataset.synchronize`.
        """
        return await self.dataset.synchronize(on_conflict, **callbacks)


class AsyncTypedDataset(_Typed, Generic[M]):
    """A dataset read and written as one ``M`` (from ``AsyncClient.dataset(name, model=M)``).

    Attributes:
        dataset: the plain `AsyncDataset` underneath (each field a record).
        model: the pydantic model.
    """

    record_model = staticmethod(record_model)

    def __init__(self, dataset: AsyncDataset, model: type[M]) -> None:
        super().__init__(dataset)
        self.model = model
        model_version(model)  # refuse a bad declaration at once

    def __repr__(self) -> str:
        return f"<AsyncTypedDataset {self.name!r} of {self.model.__name__}>"

    def _decode(self, records: Mapping[str, Record]) -> Decoded:
        return decode(self.model, _values(records), stored_version(records))

    async def get(self) -> M:
        """The dataset as an ``M`` (fields never written take their defaults).

        Raises:
            RecordValidationError: stored fields do not validate (nothing is changed).
        """
        records = {k: Record(k, v) for k, v in (await self.dataset.get_all()).items()}
        decoded = self._decode(records)
        if decoded.value is None:
            raise validation_failure(self.name, self.model, decoded)
        assert isinstance(decoded.value, self.model)
        return decoded.value

    async def put(self, value: M, *, overwrite_invalid: bool = False) -> None:
        """Store ``value``: one transaction writing only the fields whose JSON changed.

        Raises:
            InvalidValueError: ``value`` does not validate (names the field); nothing written.
            RecordValidationError: a field to change holds a stored value that does not
                validate (another app version's) and ``overwrite_invalid`` is False.
        """
        fields = {k: json_text(v) for k, v in check_value(self.model, value).items()}

        def plan(records: dict[str, Record]) -> dict[str, str | None]:
            decoded = self._decode(records)
            version = model_version(self.model)
            upgrading = stored_version(records) < version
            # Compare with what get() shows; when upgrading, with what is stored, so that the
            # upgraded values are written along with the new version.
            shown = decoded.value
            if shown is not None and not upgrading:
                dumped = shown.model_dump(mode="json", by_alias=True)
                before: dict[str, str | None] = {k: json_text(v) for k, v in dumped.items()}
            else:
                before = decoded.raw
            changes: dict[str, str | None] = {
                k: text for k, text in fields.items() if not same_json(before.get(k), text)
            }
            blocked = [k for k in changes if k in decoded.errors and decoded.raw.get(k)]
            if blocked and not overwrite_invalid:
                raise validation_failure(self.name, self.model, decoded)
            if upgrading and changes:
                changes[VERSION_KEY] = str(version)
            return changes

        await self.dataset.edit(plan)


class AsyncTypedRecords(_Typed, Generic[I]):
    """A dataset as a keyed collection of ``I`` models, one record per item.

    Attributes:
        dataset: the plain `AsyncDataset` underneath (each item a record).
        model: the item model; ``key`` names the field whose value keys its record.
    """

    def __init__(self, dataset: AsyncDataset, spec: RecordModel[I]) -> None:
        super().__init__(dataset)
        self.model = spec.item
        self.key = spec.key
        model_version(spec.item)

    def __repr__(self) -> str:
        return f"<AsyncTypedRecords {self.name!r} of {self.model.__name__}>"

    def _decode(self, key: str, text: str | None, version: int) -> Decoded:
        try:
            data = json.loads(text) if text is not None else None
        except ValueError:
            data = None
        values = data if isinstance(data, dict) else {}
        decoded = decode(self.model, {k: json_text(v) for k, v in values.items()}, version)
        if not isinstance(data, dict):
            decoded.value, decoded.errors = None, {"": "the stored value is not a JSON object"}
        if decoded.errors:  # reported under the item's key, members named in the message
            detail = "; ".join(f"{k}: {e}" if k else e for k, e in decoded.errors.items())
            decoded.errors = {key: detail}
        decoded.raw = {key: text}
        return decoded

    async def get(self, key: str) -> I | None:
        """The item stored under ``key``, or None.

        Raises:
            RecordValidationError: its stored value does not validate (it is left as is).
        """
        records = await self.dataset.get_all()
        if key not in records or key == VERSION_KEY:
            return None
        return self._valid(key, records[key], self._version(records))

    async def items(self) -> dict[str, I]:
        """Every item by key.

        Raises:
            RecordValidationError: some stored items do not validate; ``errors`` lists
                them all (nothing is changed).
        """
        records = await self.dataset.get_all()
        version = self._version(records)
        found: dict[str, I] = {}
        failed = Decoded(None, {}, {}, {})
        for key, text in records.items():
            if key == VERSION_KEY:
                continue
            decoded = self._decode(key, text, version)
            if decoded.value is None:
                failed.errors.update(decoded.errors)
                failed.raw.update(decoded.raw)
            else:
                assert isinstance(decoded.value, self.model)
                found[key] = decoded.value
        if failed.errors:
            raise validation_failure(self.name, self.model, failed)
        return found

    async def put(self, item: I, *, overwrite_invalid: bool = False) -> None:
        """Store ``item`` under its key (written only if its JSON changed).

        Raises:
            InvalidValueError: ``item`` does not validate; nothing written.
            InvalidKeyError: its key is empty, too long, or the reserved `VERSION_KEY`.
            RecordValidationError: the stored item does not validate and
                ``overwrite_invalid`` is False.
        """
        data = check_value(self.model, item)
        key = str(data.get(self.key, getattr(item, self.key)))
        if key == VERSION_KEY:
            raise InvalidKeyError(f"{key!r} is reserved for the schema version: use another id")
        text = json_text(data)

        def plan(records: dict[str, Record]) -> dict[str, str | None]:
            changes: dict[str, str | None] = {}
            version = model_version(self.model)
            if stored_version(records) < version:
                changes = self._upgraded(records)
                changes[VERSION_KEY] = str(version)
            current = records.get(key)
            stored = current.value if current is not None else None
            if stored is not None and not overwrite_invalid:
                decoded = self._decode(key, stored, stored_version(records))
                if decoded.value is None:
                    raise validation_failure(self.name, self.model, decoded)
            if not same_json(changes.get(key, stored), text):
                changes[key] = text
            return changes

        await self.dataset.edit(plan)

    async def remove(self, key: str) -> None:
        """Remove the item stored under ``key`` (synced as a removal)."""
        if key == VERSION_KEY:
            raise InvalidKeyError(f"{key!r} is reserved for the schema version")
        await self.dataset.remove(key)

    def _version(self, values: Mapping[str, str]) -> int:
        return stored_version({k: Record(k, v) for k, v in values.items() if k == VERSION_KEY})

    def _valid(self, key: str, text: str, version: int) -> I:
        decoded = self._decode(key, text, version)
        if decoded.value is None:
            raise validation_failure(self.name, self.model, decoded)
        assert isinstance(decoded.value, self.model)
        return decoded.value

    def _upgraded(self, records: Mapping[str, Record]) -> dict[str, str | None]:
        """Every valid stored item in its upgraded form, where that differs from storage."""
        version = stored_version(records)
        changes: dict[str, str | None] = {}
        for key, record in records.items():
            if key == VERSION_KEY or record.value is None:
                continue
            decoded = self._decode(key, record.value, version)
            if decoded.value is not None:
                text = json_text(decoded.value.model_dump(mode="json", by_alias=True))
                if not same_json(record.value, text):
                    changes[key] = text
        return changes


def typed_view(
    dataset: AsyncDataset, model: type[M] | RecordModel[I]
) -> AsyncTypedDataset[M] | AsyncTypedRecords[I]:
    """The typed view ``model`` asks for: a model class, or a `record_model` collection."""
    if isinstance(model, RecordModel):
        return AsyncTypedRecords(dataset, model)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return AsyncTypedDataset(dataset, model)
    raise InvalidValueError(
        f"model={model!r}: pass a pydantic BaseModel subclass or record_model(Item)"
    )
