"""An operator's sync trigger, as `cogsync serve --sync-trigger` loads it (and a Lambda would):
refuses the key ``forbidden``, upper-cases values of keys starting with ``shout``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from cogsync.models import RecordPatch
from cogsync.server.hooks import SyncRejected, lambda_handler


def check(identity_id: str, dataset_name: str, patches: list[RecordPatch]) -> Sequence[RecordPatch]:
    """Reject or modify a batch."""
    if any(p.key == "forbidden" for p in patches):
        raise SyncRejected(f"{dataset_name}: the key 'forbidden' is not allowed")
    return [
        dataclasses.replace(p, value=p.value.upper())
        if p.key.startswith("shout") and p.value is not None
        else p
        for p in patches
    ]


handler = lambda_handler(check)
"""The same trigger as an AWS Lambda handler (`lambda_handler`'s JSON contract)."""
