"""The Python floor of `benchmarks/sync.py`: the same pages of JSON, no cogsync code.

A tiny aiohttp server hands out pre-built pages; the client fetches them with aiohttp and
inserts them with sqlite3 ``executemany`` (WAL, synchronous=FULL, as the device store).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from pathlib import Path


def floor_pages(values: list[dict[str, str]]) -> list[bytes]:
    """One pre-built JSON page per dataset, shaped as a listRecords page."""
    stamp = "2026-01-01T00:00:00.000Z"
    return [
        json.dumps(
            {
                "datasetName": f"ds{d:02d}",
                "syncCount": 1,
                "records": [
                    {
                        "key": key,
                        "value": value,
                        "syncCount": 1,
                        "lastModifiedDate": stamp,
                        "lastModifiedBy": "writer",
                        "deviceLastModifiedDate": stamp,
                    }
                    for key, value in records.items()
                ],
                "nextToken": None,
            }
        ).encode()
        for d, records in enumerate(values)
    ]


async def serve_pages(pages: list[bytes]) -> None:
    """Serve ``pages`` on 127.0.0.1, print the port as JSON, run until stdin closes."""
    from aiohttp import web

    async def page(request: web.Request) -> web.Response:
        return web.Response(
            body=pages[int(request.match_info["d"])], content_type="application/json"
        )

    app = web.Application()
    app.router.add_get("/page/{d}", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(json.dumps({"port": runner.addresses[0][1]}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until closed
    await runner.cleanup()


async def fetch_and_store(port: int, path: Path, datasets: int) -> float:
    """Seconds to fetch ``datasets`` pages and insert them with executemany into ``path``."""
    import aiohttp

    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS r (ds TEXT, key TEXT, value TEXT, n INT, modified TEXT, "
        "by TEXT, device_modified TEXT, PRIMARY KEY (ds, key))"
    )
    db.execute("DELETE FROM r")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/page/0") as response:
            await response.read()  # the connection is open before the clock starts
        started = time.perf_counter()
        for d in range(datasets):
            async with session.get(f"http://127.0.0.1:{port}/page/{d}") as response:
                page = json.loads(await response.read())
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO r VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(page["datasetName"], r["key"], r["value"], r["syncCount"],
                  r["lastModifiedDate"], r["lastModifiedBy"], r["deviceLastModifiedDate"])
                 for r in page["records"]],
            )  # fmt: skip
            db.execute("COMMIT")
        elapsed = time.perf_counter() - started
    db.close()
    return elapsed
