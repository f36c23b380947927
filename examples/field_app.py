"""A field app: a long offline period (the server was never reachable), then reconnect.

Observations are written with no network at all; the device has no identity yet, so they
are kept under a provisional one. When the network returns, the first sync obtains the
identity, attaches the offline data to it and pushes everything; the office sees it all.

Run: python examples/field_app.py [--config cogsync.json --admin data/admin.json]
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
from pathlib import Path

from _server import server_and_logins

import cogsync


def main(argv: list[str] | None = None) -> int:
    with server_and_logins(argv, "ranger-7") as (config, logins):
        db = Path(tempfile.mkdtemp()) / "tablet.db"
        # No network: the endpoints point at a port where nothing listens.
        dead = "http://127.0.0.1:9/"
        offline = dataclasses.replace(
            config, graphql_url=dead + "graphql", realtime_url=dead, identity_endpoint=dead
        )
        with cogsync.Client(offline, db_path=db, logins=logins) as tablet:
            survey = tablet.dataset("survey-2026")
            for day in range(1, 31):
                survey.put(f"obs-{day:02d}", json.dumps({"day": day, "birds": day * 3 % 17}))
            deferred = tablet.synchronize_on_connectivity("survey-2026")
            print("offline: 30 observations stored; sync deferred:", deferred is None)

        # Back in range: same device file, real endpoints.
        with cogsync.Client(config, db_path=db, logins=logins) as tablet:
            result = tablet.dataset("survey-2026").synchronize()
            print(f"reconnected as {tablet.identity_id}: pushed {result.pushed} records")

        with cogsync.Client(config, db_path=db.with_name("office.db"), logins=logins) as office:
            office_survey = office.dataset("survey-2026")
            office_survey.synchronize()
            count = len(office_survey.get_all())
            print("office sees", count, "observations")
            return 0 if count == 30 else 1


if __name__ == "__main__":
    sys.exit(main())
