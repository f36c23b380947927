"""Operator hooks of `cogsync serve`: the sync trigger.

The successor of Cognito Events: a **sync trigger** is a callable
``(identity_id, dataset_name, patches) -> patches`` that sees every update batch before it
is applied. It returns the patches to apply (the same, or modified), or raises
`SyncRejected` to refuse the batch; the client then gets an ``InvalidParameterException``
carrying the trigger's reason and nothing is applied. It runs inside the storage
transaction on the storage thread, so it must be quick and must not call back into the
server.

`load_sync_trigger` loads one from ``module:function`` (``cogsync serve --sync-trigger``).
`lambda_handler` wraps the same function as an AWS Lambda handler with a JSON contract: the
event ``{"identityId", "datasetName", "records": [{"op", "key", "value", "syncCount",
"deviceLastModifiedDate"}]}`` is answered with ``{"records": [...]}`` (the patches to apply,
same shape) or ``{"rejected": reason}``: a trigger in a stack's push pipeline (template
parameter ``SyncTriggerFunctionArn``, whose event also carries ``deviceId``,
``clientRequestId`` and the dataset's ``syncCount``; server_schema/README.md).

The successor of Cognito Streams, the change stream, is `cogsync.server.changes`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cogsync._awsdatetime import format_datetime, parse_datetime
from cogsync.exceptions import ConfigError, UsageError
from cogsync.models import PatchOp, RecordPatch

__all__ = ["ServerHooks", "SyncRejected", "SyncTrigger", "lambda_handler", "load_sync_trigger"]

SyncTrigger = Callable[[str, str, list[RecordPatch]], Sequence[RecordPatch]]
"""``(identity_id, dataset_name, patches) -> patches to apply``; raise `SyncRejected` to refuse."""


class SyncRejected(UsageError):
    """Raised by a sync trigger to refuse a batch; the message reaches the client as is."""


@dataclass(frozen=True, slots=True)
class ServerHooks:
    """The operator's hooks for a `SyncService`.

    Attributes:
        sync_trigger: called with every new update batch (not with retried request ids).
    """

    sync_trigger: SyncTrigger | None = None


def load_sync_trigger(spec: str) -> SyncTrigger:
    """Import the sync trigger named ``module:function`` (``module`` on ``sys.path``).

    Raises:
        ConfigError: the spec is malformed, the module does not import, or the name is not
            a callable.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"--sync-trigger {spec!r} must be module:function")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the operator's module may raise anything on import
        raise ConfigError(
            f"--sync-trigger: cannot import {module_name!r} ({type(exc).__name__}: {exc})"
        ) from exc
    target: Any = module
    for part in attribute.split("."):
        target = getattr(target, part, None)
    if not callable(target):
        raise ConfigError(f"--sync-trigger: {module_name}.{attribute} is not a function")
    trigger: SyncTrigger = target
    return trigger


def _patch(item: Any) -> RecordPatch:
    if not isinstance(item, dict) or not isinstance(item.get("key"), str):
        raise ValueError("each record needs a string key")
    device = item.get("deviceLastModifiedDate")
    return RecordPatch(
        op=PatchOp(item.get("op", "REPLACE")),
        key=item["key"],
        value=item.get("value"),
        sync_count=int(item.get("syncCount", 0)),
        device_last_modified_date=parse_datetime(device) if device else None,
    )


def _record(patch: RecordPatch) -> dict[str, Any]:
    device = patch.device_last_modified_date
    return {
        "op": str(patch.op),
        "key": patch.key,
        "value": patch.value,
        "syncCount": patch.sync_count,
        "deviceLastModifiedDate": format_datetime(device) if device else None,
    }


def lambda_handler(trigger: SyncTrigger) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """An AWS Lambda handler running ``trigger`` (the JSON contract of the module docstring).

    Example (the Lambda's module)::

        from cogsync.server.hooks import lambda_handler
        from myapp.triggers import check_scores
        handler = lambda_handler(check_scores)
    """

    def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        patches = [_patch(item) for item in event.get("records") or []]
        try:
            kept = trigger(str(event["identityId"]), str(event["datasetName"]), patches)
        except SyncRejected as exc:
            return {"rejected": str(exc) or "rejected by the sync trigger"}
        return {"records": [_record(p) for p in kept]}

    return handler
