"""Offline first: a device with no server at all reads and writes its datasets.

Run: python examples/offline_first.py [DB_PATH]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import cogsync


def main(db_path: Path) -> None:
    # No config: this device has never reached a server. Everything works locally and
    # every write is on disk when the call returns.
    with cogsync.Client(db_path=db_path) as client:
        prefs = client.dataset("preferences")
        prefs.put("theme", "dark")
        prefs.put_all({"language": "fr", "units": json.dumps({"distance": "km"})})
        prefs.remove("language")
        print("preferences:", prefs.get_all())
        print("theme record dirty (waiting for sync):", prefs.record("theme").dirty)
        try:
            prefs.put("x" * 129, "too long a key")
        except cogsync.InvalidKeyError as exc:
            print("refused:", exc)
        for meta in client.list_datasets():
            print(f"dataset {meta.name}: {meta.record_count} records, {meta.size_in_bytes} bytes")

    # Reopen the file: the data is still there.
    with cogsync.Client(db_path=db_path) as client:
        assert client.dataset("preferences").get("theme") == "dark"
        print("reopened: theme is still", client.dataset("preferences").get("theme"))


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "device.db"
    main(path)
