"""Cross-device preferences: set on the desktop, read on the laptop, pushed back live.

Run against a server:  cogsync serve --data ./data &
                       python examples/preferences.py --config cogsync.json --admin data/admin.json
or standalone (starts an embedded server): python examples/preferences.py
"""

from __future__ import annotations

import sys
import tempfile
import threading
from pathlib import Path

from _server import server_and_logins

import cogsync


def main(argv: list[str] | None = None) -> int:
    with server_and_logins(argv, "pat@example.com") as (config, logins):
        tmp = Path(tempfile.mkdtemp())
        with (
            cogsync.Client(config, db_path=tmp / "desktop.db", logins=logins) as desktop,
            cogsync.Client(config, db_path=tmp / "laptop.db", logins=logins) as laptop,
        ):
            prefs = desktop.dataset("preferences")
            prefs.put_all({"theme": "dark", "editor.font": "Fira Code", "editor.size": "13"})
            print("desktop pushed", prefs.synchronize().pushed, "preferences")

            laptop_prefs = laptop.dataset("preferences")
            result = laptop_prefs.synchronize()
            print("laptop pulled", result.pulled, "->", laptop_prefs.get_all())

            # The desktop listens; a change on the laptop arrives without a synchronize call.
            changed = threading.Event()
            desktop.start_push_sync(on_change=lambda name, res: res.pulled and changed.set())
            laptop_prefs.put("theme", "solarized")
            laptop_prefs.synchronize()
            if not changed.wait(timeout=10):
                print("the desktop did not hear about the change")
                return 1
            desktop.stop_push_sync()
            print("desktop now has theme =", prefs.get("theme"))
            return 0 if prefs.get_all() == laptop_prefs.get_all() else 1


if __name__ == "__main__":
    sys.exit(main())
