"""A client in its own process, driven line by line over stdin (for the multi-process tests).

Each input line is a JSON list: ``["open", config_path, db_path, logins_or_null]``,
``["put", dataset, key, value]``, ``["get_all", dataset]``, ``["sync"]``, ``["identity"]``,
``["close"]``. Each answer is one JSON line: ``["ok", result]`` or ``["error", names]`` (the
error's class and its bases).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import cogsync


def main() -> None:
    client: cogsync.Client | None = None
    for line in sys.stdin:
        command, *args = json.loads(line)
        result: Any = None
        try:
            if command == "open":
                config_path, db_path, logins = args
                client = cogsync.Client(
                    cogsync.Config.load(config_path), db_path=db_path, logins=logins
                )
            elif command == "close":
                assert client is not None
                client.close()
                print(json.dumps(["ok", None]), flush=True)
                return
            else:
                assert client is not None
                if command == "put":
                    client.dataset(args[0]).put(args[1], args[2])
                elif command == "get_all":
                    result = client.dataset(args[0]).get_all()
                elif command == "sync":
                    client.synchronize_all()
                elif command == "identity":
                    result = client.identity_id
        except cogsync.CogsyncError as exc:
            print(json.dumps(["error", [c.__name__ for c in type(exc).__mro__]]), flush=True)
            continue
        print(json.dumps(["ok", result]), flush=True)


if __name__ == "__main__":
    main()
