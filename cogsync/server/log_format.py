"""Logging set-up for `cogsync serve`: ``--log-level`` and ``--log-format text|json``.

The library only logs through stdlib `logging` (loggers under ``cogsync``); this module is
used by the command line to send those records to stderr as text lines or as one JSON
object per line (with the access log's fields as keys). `quiet_client_faults` keeps
malformed requests (a client's fault, answered 400) out of the error log.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import RequestPayloadError

__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "ClientFaultFilter",
    "JsonFormatter",
    "configure_logging",
    "quiet_client_faults",
]

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

_FIELDS = ("method", "path", "status", "duration_ms", "identity_id", "operation")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and the access fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str = "info", log_format: str = "text") -> logging.Handler:
    """Send ``cogsync`` (and aiohttp) log records at ``level`` and above to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler


class ClientFaultFilter(logging.Filter):
    """Turns aiohttp's ERROR-with-traceback for a malformed request (too long a line, a bad
    header or content encoding: a 4xx the client caused) into an INFO one-liner; every
    other record passes unchanged, so real server errors stay ERROR."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, RequestPayloadError):  # the body: bad encoding, length, chunks
            exc = exc.__cause__ or exc
        elif not isinstance(exc, HttpProcessingError) or not 400 <= (exc.code or 0) < 500:
            return True
        detail = " ".join(str(exc).split())[:200]
        record.msg = f"{record.getMessage()}: a malformed request ({type(exc).__name__}): {detail}"
        record.args = ()
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.exc_info, record.exc_text = None, None
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)


def quiet_client_faults(logger_name: str = "aiohttp.server") -> None:
    """Install `ClientFaultFilter` on aiohttp's server logger (once)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, ClientFaultFilter) for f in logger.filters):
        logger.addFilter(ClientFaultFilter())
