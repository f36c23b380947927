"""Memory of `cogsync serve` under a real-time flood by one guest (run:
``python benchmarks/realtime_attack.py``).

One guest identity opens ``--connections`` WebSockets and sends ``--subscriptions`` signed
``start`` messages on each. The server runs in its own process, twice: with the default
`RealtimeLimits` (per-identity caps) and with caps raised out of reach (the unbounded
server of before). Its resident memory (``VmRSS`` of ``/proc/<pid>/status``) is printed
before and after the flood, with what the server accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import boto3
from botocore.credentials import Credentials
from gql.transport.appsync_auth import AppSyncIAMAuthentication

from cogsync import Config

SUBSCRIBE = """subscription S($id: ID!) { onDatasetChanged(identityId: $id) {
  identityId datasetName syncCount deleted } }"""
UNBOUNDED = [
    *("--realtime-connections-per-identity", "1000000"),
    *("--realtime-subscriptions-per-identity", "1000000"),
]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def guest(config: Config) -> tuple[str, Credentials]:
    client = boto3.client(
        "cognito-identity",
        endpoint_url=config.identity_endpoint,
        region_name=config.region,
        aws_access_key_id="unused",
        aws_secret_access_key="unused",
    )
    identity_id = client.get_id(IdentityPoolId=config.identity_pool_id)["IdentityId"]
    creds = client.get_credentials_for_identity(IdentityId=identity_id)["Credentials"]
    return identity_id, Credentials(creds["AccessKeyId"], creds["SecretKey"], creds["SessionToken"])


async def flood(config: Config, connections: int, subscriptions: int) -> dict[str, int]:
    identity_id, creds = await asyncio.to_thread(guest, config)
    auth = AppSyncIAMAuthentication(
        host=urlsplit(config.graphql_url).netloc, region_name=config.region, credentials=creds
    )
    header = base64.urlsafe_b64encode(json.dumps(auth.get_headers()).encode()).decode()
    protocols = ["graphql-ws", "header-" + header.rstrip("=")]
    data = json.dumps({"query": SUBSCRIBE, "variables": {"id": identity_id}})
    counts = {"refused_connections": 0, "start_ack": 0, "error": 0}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        sockets = []
        for _ in range(connections):
            ws = await session.ws_connect(config.realtime_url, protocols=protocols)
            await ws.send_str(json.dumps({"type": "connection_init"}))
            sockets.append(ws)
        for n, ws in enumerate(sockets):
            for m in range(subscriptions):
                payload = {"data": data, "extensions": {"authorization": auth.get_headers(data)}}
                await ws.send_str(
                    json.dumps({"id": f"{n}-{m}", "type": "start", "payload": payload})
                )
        deadline = time.monotonic() + 600
        for ws in sockets:
            expected = subscriptions
            while expected and time.monotonic() < deadline:
                try:
                    message = await ws.receive(timeout=60)
                except TimeoutError:
                    break
                if message.type != aiohttp.WSMsgType.TEXT:
                    counts["refused_connections"] += 1
                    break
                kind = json.loads(message.data)["type"]
                if kind == "connection_error":
                    counts["refused_connections"] += 1
                    break
                if kind in ("start_ack", "error"):
                    counts[kind] += 1
                    expected -= 1
        await asyncio.sleep(1.0)  # let the server settle before it is measured
        return counts


def run(label: str, extra: list[str], connections: int, subscriptions: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cogsync.json"
        command = [sys.executable, "-m", "cogsync.cli", "serve", "--port", "0"]
        command += ["--data", str(Path(tmp) / "data"), "--config-out", str(out), *extra]
        process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        try:
            assert process.stderr is not None
            process.stderr.readline()  # "listening on ..."
            threading.Thread(target=process.stderr.read, daemon=True).start()  # keep draining
            config = Config.load(out)
            asyncio.run(flood(config, 1, 1))  # warm up: imports, first connection, schema
            before = rss_mb(process.pid)

            async def attack() -> dict[str, int]:
                counts = await flood(config, connections, subscriptions)
                return {**counts, "server_rss": int(rss_mb(process.pid))}

            counts = asyncio.run(attack())
            print(
                f"{label:>9}: RSS {before:.0f} -> {counts['server_rss']} MB; "
                f"subscriptions accepted {counts['start_ack']}, refused {counts['error']}; "
                f"connections refused {counts['refused_connections']} of {connections}"
            )
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--subscriptions", type=int, default=100)
    args = parser.parse_args()
    print(f"one guest: {args.connections} connections x {args.subscriptions} subscriptions")
    run("capped", [], args.connections, args.subscriptions)
    run("unbounded", UNBOUNDED, args.connections, args.subscriptions)


if __name__ == "__main__":
    main()
