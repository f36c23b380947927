"""`ServerLimits`: the bounds `cogsync serve` puts on connections, requests, answers and disk.

One frozen dataclass, passed down from `cogsync.server.runner.EmbeddedServer` (keyword
``server_limits``) and filled from ``cogsync serve`` flags. The defaults sit far above
anything the cogsync client sends or asks for, so only hostile or broken clients meet them;
each one is documented in ``docs/server-limits.md``. An invalid value is refused with a
one-line `ConfigError` when the object is built.

This module also knows the size of the largest legitimate answer (a full listRecords page,
`largest_page_bytes`), so a response bound below it is refused as a configuration error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from cogsync.exceptions import ConfigError
from cogsync.limits import DEFAULT_LIMITS, Limits

__all__ = ["DEFAULT_SERVER_LIMITS", "LIMIT_HELP", "ServerLimits", "largest_page_bytes"]

_MAX_DEVICE_ID = 256  # characters of lastModifiedBy (a client id, see server.paging)
_RECORD_OVERHEAD = 200  # bytes of a record's JSON besides its key, value and device id
_PAGE_OVERHEAD = 64 * 1024  # dataset name, merged dataset names, next token, envelope
_DEFAULT_RESPONSE_BYTES = 8 * 1024 * 1024
_ESCAPE = 6  # the most bytes JSON needs for one byte of text (a control character: \u0000)


def largest_page_bytes(limits: Limits = DEFAULT_LIMITS) -> int:
    """Bytes of the largest listRecords answer a dataset within ``limits`` can produce.

    Every key and value byte escaped at the worst rate JSON has (``\\u0000`` for a control
    character), the longest device id on every record, plus the page's envelope.
    """
    per_record = _RECORD_OVERHEAD + _ESCAPE * _MAX_DEVICE_ID
    return _ESCAPE * limits.max_dataset_bytes + limits.max_records * per_record + _PAGE_OVERHEAD


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Bounds on what one client can make `cogsync serve` hold or do.

    Attributes:
        max_connections: open TCP connections (HTTP and WebSocket together); a connection
            past it is answered ``503`` with an AppSync-shaped error and closed.
        header_timeout: seconds a client has to send a complete request head (from the
            connection's start, or from the first byte of a later keep-alive request).
        body_timeout: seconds a client has to send a whole request body once its head
            arrived; past it the answer is ``408`` and the connection is closed.
        idle_timeout: seconds an idle keep-alive HTTP connection stays open.
        max_query_tokens: GraphQL tokens in one document (parsing stops past it).
        max_query_depth: nesting of selections, fragments expanded.
        max_query_aliases: aliased fields in one operation, fragments expanded.
        max_query_fields: fields in one operation, fragments expanded.
        max_response_bytes: bytes of one GraphQL answer; a larger one is refused with a
            ``BadRequestException``. At least `largest_page_bytes` of the data limits; the
            default grows to it when the data limits are raised.
        replay_requests: request ids remembered per dataset for idempotent retries.
        replay_max_age: seconds a request id is remembered (0: no age bound).
        change_log_max_age: seconds change-log entries are kept (0: kept forever).
        change_log_keys: keys the change log keeps per dataset; its oldest entries past
            it are dropped (an entry counts at least 1; 0: no bound).
    """

    max_connections: int = 1000
    header_timeout: float = 30.0
    body_timeout: float = 120.0
    idle_timeout: float = 75.0
    max_query_tokens: int = 10_000
    max_query_depth: int = 16
    max_query_aliases: int = 100
    max_query_fields: int = 1_000
    max_response_bytes: int = 8 * 1024 * 1024  # _DEFAULT_RESPONSE_BYTES
    replay_requests: int = 32
    replay_max_age: float = 7 * 24 * 3600.0
    change_log_max_age: float = 30 * 24 * 3600.0
    change_log_keys: int = 10_000

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or not math.isfinite(value) or value < _MINIMUM[spec.name]:
                raise ConfigError(
                    f"{spec.name} must be a number of at least {_MINIMUM[spec.name]}, not {value!r}"
                )
            if spec.type == "int" and not isinstance(value, int):
                raise ConfigError(f"{spec.name} must be a whole number, not {value!r}")

    def fitted_to(self, limits: Limits) -> ServerLimits:
        """These bounds for a server enforcing the data ``limits``.

        The default response bound grows to fit a full page of raised data limits; a bound
        set below such a page is refused with `ConfigError`.
        """
        needed = largest_page_bytes(limits)
        if self.max_response_bytes == _DEFAULT_RESPONSE_BYTES and needed > _DEFAULT_RESPONSE_BYTES:
            return replace(self, max_response_bytes=needed)
        if self.max_response_bytes < needed:
            raise ConfigError(
                f"max_response_bytes {self.max_response_bytes} is below the largest "
                f"listRecords page these data limits allow ({needed} bytes): raise it"
            )
        return self


_MINIMUM: dict[str, float] = {
    "max_connections": 1,
    "header_timeout": 0.1,
    "body_timeout": 0.1,
    "idle_timeout": 0.1,
    "max_query_tokens": 100,
    "max_query_depth": 4,
    "max_query_aliases": 0,
    "max_query_fields": 20,
    "max_response_bytes": 1024,
    "replay_requests": 1,
    "replay_max_age": 0,
    "change_log_max_age": 0,
    "change_log_keys": 0,
}

DEFAULT_SERVER_LIMITS = ServerLimits()
"""The defaults (see ``docs/server-limits.md``)."""

LIMIT_HELP: dict[str, str] = {
    "max_connections": "open TCP connections, HTTP and WebSocket together",
    "header_timeout": "seconds to send a complete request head",
    "body_timeout": "seconds to send a whole request body",
    "idle_timeout": "seconds an idle keep-alive connection stays open",
    "max_query_tokens": "GraphQL tokens in one document",
    "max_query_depth": "nesting of selections in one operation",
    "max_query_aliases": "aliased fields in one operation",
    "max_query_fields": "fields in one operation, fragments expanded",
    "max_response_bytes": "bytes of one GraphQL answer",
    "replay_requests": "request ids remembered per dataset for retries",
    "replay_max_age": "seconds a request id is remembered (0: no age bound)",
    "change_log_max_age": "seconds change-log entries are kept (0: forever)",
    "change_log_keys": "keys the change log keeps per dataset (0: no bound)",
}
"""One line per `ServerLimits` field: the ``cogsync serve --<field>`` flag's help."""
