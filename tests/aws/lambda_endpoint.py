"""Test-only: a local stand-in for the sync trigger's Lambda function.

The simulator's launcher invokes a template's Lambda data source through the Lambda Invoke
API (``--lambda-endpoint URL``): ``POST /2015-03-31/functions/<function ARN>/invocations``
with the event as JSON body. This server runs a Python handler ``(event, context) ->
result`` on it, as the Lambda Python runtime would: the result is the JSON answer; an
exception is a failed invocation (``X-Amz-Function-Error: Unhandled`` and the runtime's
``{"errorMessage", "errorType"}`` body). It listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote

from tests.aws.local_http import LocalHttpServer, send_json

Handler = Callable[[dict[str, Any], Any], Any]

_PREFIX = "/2015-03-31/functions/"
_SUFFIX = "/invocations"


@dataclass(frozen=True)
class Invocation:
    """One call of the function: the name or ARN it was invoked by, and its event."""

    function: str
    event: dict[str, Any]


class LambdaEndpoint(LocalHttpServer):
    """An HTTP server on 127.0.0.1 (port 0) running ``handler`` for every invocation.

    Args:
        handler: the function's handler; tests may replace the attribute at any time.
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.invocations: list[Invocation] = []
        endpoint = self

        class Server(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if not (self.path.startswith(_PREFIX) and self.path.endswith(_SUFFIX)):
                    self.send_error(404, "not a Lambda Invoke path")
                    return
                function = unquote(self.path[len(_PREFIX) : -len(_SUFFIX)])
                length = int(self.headers.get("Content-Length") or 0)
                event = json.loads(self.rfile.read(length) or b"null")
                endpoint.invocations.append(Invocation(function, event))
                failed = None
                try:
                    answer = endpoint.handler(event, None)
                except Exception as exc:  # the function's own failure, as Lambda reports it
                    failed = "Unhandled"
                    answer = {"errorMessage": str(exc), "errorType": type(exc).__name__}
                send_json(self, answer, {"X-Amz-Function-Error": failed} if failed else None)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the tests read `invocations` instead."""

        super().__init__(Server)
