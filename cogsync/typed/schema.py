"""How a pydantic model maps onto records: JSON text, schema versions, upgrades, validation.

A model may declare ``cogsync_version: ClassVar[int]`` (default 1) and a classmethod
``cogsync_upgrade(data: dict[str, Any], version: int) -> dict[str, Any]`` that turns
values stored by an older version (``version``) into the current shape. A dataset
remembers the newest version that wrote it in the reserved record `VERSION_KEY`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from cogsync.exceptions import InvalidValueError, RecordValidationError
from cogsync.models import Record

__all__ = [
    "VERSION_KEY",
    "Decoded",
    "check_value",
    "decode",
    "json_text",
    "model_version",
    "stored_version",
    "validation_failure",
]

VERSION_KEY = "_schema_version"
"""The reserved record holding the newest schema version that wrote the dataset."""


def json_text(value: Any) -> str:
    """Compact JSON text of a JSON-compatible value (what a record stores)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def model_version(model: type[BaseModel]) -> int:
    """The schema version ``model`` declares (``cogsync_version``, default 1)."""
    version = getattr(model, "cogsync_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidValueError(
            f"{model.__name__}.cogsync_version is {version!r}: declare a positive int"
        )
    return version


def stored_version(records: Mapping[str, Record]) -> int:
    """The schema version recorded in a dataset (1 when never recorded)."""
    record = records.get(VERSION_KEY)
    try:
        version = int(record.value) if record is not None and record.value else 1
    except ValueError:
        return 1
    return max(version, 1)


def _errors(exc: ValidationError) -> dict[str, str]:
    """Top-level key -> message of each error (model-wide errors under "")."""
    errors: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        key = str(loc[0]) if loc else ""
        path = ".".join(str(part) for part in loc[1:])
        errors.setdefault(key, f"{path + ': ' if path else ''}{error['msg']}")
    return errors


def check_value(model: type[BaseModel], value: object) -> dict[str, Any]:
    """The JSON form of ``value`` (an instance of ``model``), validated again.

    Raises:
        InvalidValueError: ``value`` is not a ``model``, or does not validate (e.g. a field
            assigned a wrong value after construction); the message names the field.
    """
    if not isinstance(value, model):
        raise InvalidValueError(
            f"expected a {model.__name__} instance, got {type(value).__name__}: nothing was written"
        )
    data: dict[str, Any] = value.model_dump(mode="json", by_alias=True, warnings=False)
    try:
        model.model_validate(data)
    except ValidationError as exc:
        field, message = next(iter(_errors(exc).items()))
        raise InvalidValueError(
            f"{model.__name__}.{field or '<model>'} is invalid ({message}): nothing was written"
        ) from exc
    return data


class Decoded:
    """Stored records read as a ``model``: the value, or what stops it from validating.

    Attributes:
        value: the validated model, or None.
        errors: key -> what is wrong (empty when ``value`` is set).
        raw: key -> the stored text of every key the model reads.
        upgraded: key -> JSON text after the schema upgrade (what a current write stores).
    """

    def __init__(
        self,
        value: BaseModel | None,
        errors: dict[str, str],
        raw: dict[str, str | None],
        upgraded: dict[str, str],
    ) -> None:
        self.value = value
        self.errors = errors
        self.raw = raw
        self.upgraded = upgraded


def decode(model: type[BaseModel], values: Mapping[str, str | None], version: int) -> Decoded:
    """Read ``values`` (key -> stored JSON text) written at schema ``version`` as a ``model``."""
    data: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key, text in values.items():
        if text is None or key == VERSION_KEY:
            continue
        try:
            data[key] = json.loads(text)
        except ValueError:
            errors[key] = "the stored value is not JSON"
    upgrade = getattr(model, "cogsync_upgrade", None)
    if version < model_version(model) and upgrade is not None:
        data = upgrade(dict(data), version)
    known = {info.alias or name for name, info in model.model_fields.items()}
    data = {k: v for k, v in data.items() if k in known and k not in errors}
    raw = {k: values.get(k) for k in known}
    upgraded = {k: json_text(v) for k, v in data.items()}
    try:
        value = model.model_validate(data)
    except ValidationError as exc:
        errors.update(_errors(exc))
        return Decoded(
            None, {k: e for k, e in errors.items() if k in known or not k}, raw, upgraded
        )
    if errors := {k: e for k, e in errors.items() if k in known}:
        return Decoded(None, errors, raw, upgraded)
    return Decoded(value, {}, raw, upgraded)


def validation_failure(
    dataset: str, model: type[BaseModel], decoded: Decoded
) -> RecordValidationError:
    """The typed error for stored records that do not validate as ``model``."""
    listed = "; ".join(f"{k or '<model>'}: {e}" for k, e in sorted(decoded.errors.items()))
    return RecordValidationError(
        f"dataset {dataset!r} holds values that are not a valid {model.__name__} ({listed}); "
        "they were left untouched (written by another app version?): upgrade the app, add "
        "a cogsync_upgrade, or overwrite them on purpose with put(..., overwrite_invalid=True)",
        dataset=dataset,
        errors=decoded.errors,
        values={k: decoded.raw.get(k) for k in decoded.errors},
    )
