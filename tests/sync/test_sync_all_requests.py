"""`synchronize_all` asks only for what changed, counted on the wire of a real server.

A TCP relay between the client and an `EmbeddedServer` records every request; the client
must skip datasets the server lists at the sync count it already stores (with nothing to
push), and still notice everything else: changes made elsewhere, its own edits and
deletions, and datasets deleted on the server.
"""

from __future__ import annotations

from pathlib import Path

from tcp_proxy import TcpProxy

from cogsync.auth.cognito import CognitoIdentity
from cogsync.client import AsyncClient
from cogsync.remote.graphql import GraphQLBackend
from cogsync.server.runner import EmbeddedServer
from cogsync.testing.servers import developer_logins

NAMES = ["d0", "d1", "d2", "d3", "d4"]
OPERATIONS = (b"listDatasets", b"listRecords", b"pushRecords", b"deleteDataset")


def _asked(proxy: TcpProxy, since: int) -> list[str]:
    """The GraphQL operations sent since request number ``since`` (identity calls left out)."""
    asked = []
    for request in proxy.requests[since:]:
        asked += [op.decode() for op in OPERATIONS if op in request.split(b"\r\n\r\n", 1)[-1]]
    return asked


async def _two_devices(
    srv: EmbeddedServer, proxy: TcpProxy, tmp_path: Path
) -> tuple[AsyncClient, AsyncClient]:
    """Device ``a`` (direct) holding NAMES, device ``b`` (through the relay) synced with it."""
    logins = await developer_logins(srv, "alice")
    a = AsyncClient(srv.config, db_path=tmp_path / "a.db", logins=logins)
    b = AsyncClient(proxy.config_for(srv.config), db_path=tmp_path / "b.db", logins=logins)
    for name in NAMES:
        await (await a.dataset(name)).put_all({"k": name, "other": "x"})
    await a.synchronize_all()
    assert {n: r.pulled for n, r in (await b.synchronize_all()).items()} == dict.fromkeys(NAMES, 2)
    return a, b


async def test_after_one_change_elsewhere_only_that_dataset_is_asked_for(
    proxied: tuple[EmbeddedServer, TcpProxy], tmp_path: Path
) -> None:
    srv, proxy = proxied
    a, b = await _two_devices(srv, proxy, tmp_path)
    async with a, b:
        mine = await a.dataset("d2")
        await mine.put("k", "changed")
        await mine.synchronize()
        since = len(proxy.requests)
        results = await b.synchronize_all()
        assert _asked(proxy, since) == ["listDatasets", "listRecords"]
        assert list(results) == NAMES
        assert results["d2"].pulled == 1 and results["d2"].sync_count == 2
        assert all(results[n].sync_count == 1 and not results[n].pulled for n in NAMES if n != "d2")
        assert await (await b.dataset("d2")).get("k") == "changed"
        status = await b.status()
        assert all(status.datasets[n].last_synced_at is not None for n in NAMES)

        since = len(proxy.requests)
        assert set(await b.synchronize_all()) == set(NAMES)
        assert _asked(proxy, since) == ["listDatasets"]  # nothing changed anywhere


async def test_local_edits_and_deletions_are_still_sent(
    proxied: tuple[EmbeddedServer, TcpProxy], tmp_path: Path
) -> None:
    srv, proxy = proxied
    a, b = await _two_devices(srv, proxy, tmp_path)
    async with a, b:
        await (await b.dataset("d1")).put("k", "from b")
        await (await b.dataset("d3")).delete()
        since = len(proxy.requests)
        results = await b.synchronize_all()
        asked = _asked(proxy, since)
        assert asked.count("pushRecords") == 1 and asked.count("deleteDataset") == 1
        assert results["d1"].pushed == 1 and results["d3"].deleted
        synced = await a.synchronize_all()
        assert await (await a.dataset("d1")).get("k") == "from b"
        assert synced["d3"].deleted
        assert "d3" not in {d.name for d in await a.list_datasets()}


async def test_a_dataset_deleted_on_the_server_is_still_noticed(
    proxied: tuple[EmbeddedServer, TcpProxy], tmp_path: Path
) -> None:
    srv, proxy = proxied
    a, b = await _two_devices(srv, proxy, tmp_path)
    async with a, b:
        await (await a.dataset("d4")).delete()
        await a.synchronize("d4")
        results = await b.synchronize_all()
        assert results["d4"].deleted
        assert "d4" not in {d.name for d in await b.list_datasets()}
        assert all(not results[n].deleted for n in NAMES if n != "d4")


async def test_a_dataset_only_the_server_knows_is_pulled(
    proxied: tuple[EmbeddedServer, TcpProxy], tmp_path: Path
) -> None:
    srv, proxy = proxied
    a, b = await _two_devices(srv, proxy, tmp_path)
    async with a, b:
        await (await a.dataset("new")).put("k", "v")
        await a.synchronize("new")
        since = len(proxy.requests)
        results = await b.synchronize_all()
        assert _asked(proxy, since) == ["listDatasets", "listRecords"]
        assert results["new"].pulled == 1
        assert await (await b.dataset("new")).get("k") == "v"


async def test_requests_and_answers_carry_no_needless_headers(
    proxied: tuple[EmbeddedServer, TcpProxy], tmp_path: Path
) -> None:
    """Every request names the client in a short User-Agent and sends no ``Accept: */*``;
    the server does not name its HTTP library (or its version) in ``Server``."""
    srv, proxy = proxied
    a, b = await _two_devices(srv, proxy, tmp_path)
    async with a, b:
        graphql = [r for r in proxy.requests if r.startswith(b"POST /graphql ")]
        assert graphql
        for request in graphql:
            head = request.split(b"\r\n\r\n", 1)[0].lower().split(b"\r\n")
            assert any(line.startswith(b"user-agent: cogsync/") for line in head), head
            assert not [line for line in head if line.startswith(b"accept:")], head
        assert proxy.answers and all(b"\r\nserver:" not in a.lower() for a in proxy.answers)


async def test_pages_fetched_ahead_are_each_asked_for_once(
    proxied: tuple[EmbeddedServer, TcpProxy], tmp_path: Path
) -> None:
    """A new device's first sync, two at a time: the datasets next in line are fetched
    while others sync, and every page is still asked for once and stored."""
    srv, proxy = proxied
    logins = await developer_logins(srv, "alice")
    a = AsyncClient(srv.config, db_path=tmp_path / "a.db", logins=logins)
    b = AsyncClient(proxy.config_for(srv.config), db_path=tmp_path / "b.db", logins=logins)
    async with a, b:
        for name in NAMES:
            await (await a.dataset(name)).put_all({"k": name, "other": "x"})
        await a.synchronize_all()
        await b.refresh_dataset_metadata()  # b knows the names, as a listing tells it
        since = len(proxy.requests)
        results = await b.synchronize_all(concurrency=2)
        assert _asked(proxy, since) == ["listDatasets"] + ["listRecords"] * len(NAMES)
        assert {n: (r.pulled, r.sync_count) for n, r in results.items()} == dict.fromkeys(
            NAMES, (2, 1)
        )
        for name in NAMES:
            assert await (await b.dataset(name)).get_all() == {"k": name, "other": "x"}


async def test_a_page_fetched_ahead_is_taken_once_and_a_dropped_one_asked_again(
    proxied: tuple[EmbeddedServer, TcpProxy], tmp_path: Path
) -> None:
    srv, proxy = proxied
    logins = await developer_logins(srv, "alice")
    async with AsyncClient(srv.config, db_path=tmp_path / "a.db", logins=logins) as a:
        await (await a.dataset("d0")).put("k", "v")
        await a.synchronize_all()
    identity = CognitoIdentity(srv.config, logins=logins)
    async with GraphQLBackend(proxy.config_for(srv.config), identity) as remote:
        await remote.server_info()  # the connection and credentials are ready
        since = len(proxy.requests)
        remote.fetch_ahead("d0", 0)
        page = await remote.list_records("d0", 0)
        assert [r.key for r in page.records] == ["k"]
        await remote.list_records("d0", 1)  # not the page fetched ahead: asked for
        assert _asked(proxy, since) == ["listRecords", "listRecords"]
        remote.fetch_ahead("d0", 0)
        remote.drop_ahead()
        since = len(proxy.requests)
        assert (await remote.list_records("d0", 0)) == page
        assert _asked(proxy, since) == ["listRecords"]


async def test_a_dataset_the_server_never_had_is_pushed_without_a_pull(
    proxied: tuple[EmbeddedServer, TcpProxy], tmp_path: Path
) -> None:
    srv, proxy = proxied
    a, b = await _two_devices(srv, proxy, tmp_path)
    async with a, b:
        await (await b.dataset("fresh")).put_all({"x": "1", "y": "2"})
        since = len(proxy.requests)
        results = await b.synchronize_all()
        assert _asked(proxy, since) == ["listDatasets", "pushRecords"]
        assert (results["fresh"].pushed, results["fresh"].sync_count) == (2, 1)
        assert (await (await b.dataset("fresh")).status()).pending_changes == 0
        since = len(proxy.requests)
        await b.synchronize_all()
        assert _asked(proxy, since) == ["listDatasets"]  # last_sync_count moved to 1
        await a.synchronize("fresh")
        assert await (await a.dataset("fresh")).get_all() == {"x": "1", "y": "2"}


async def test_a_dataset_created_elsewhere_after_the_listing_still_ends_merged(
    proxied: tuple[EmbeddedServer, TcpProxy], tmp_path: Path
) -> None:
    """The listing said the server had no "late"; another device creates it before the push:
    the push (sync counts 0) is refused on the shared key, re-pulled and resolved."""
    srv, proxy = proxied
    a, b = await _two_devices(srv, proxy, tmp_path)
    async with a, b:
        await (await b.dataset("late")).put_all({"shared": "from b", "mine": "b"})
        theirs = await a.dataset("late")
        await theirs.put_all({"shared": "from a", "theirs": "a"})
        listed = await b.refresh_dataset_metadata()
        assert "late" not in {d.name for d in listed if d.sync_count}
        original = b.refresh_dataset_metadata

        async def listing_then_a_writes() -> object:
            answer = await original()
            await theirs.synchronize()  # after b's listing, before its push
            return answer

        b.refresh_dataset_metadata = listing_then_a_writes  # type: ignore[method-assign]
        since = len(proxy.requests)
        results = await b.synchronize_all()
        refused_then_pulled = ["pushRecords", "listRecords", "pushRecords"]
        assert _asked(proxy, since) == ["listDatasets", *refused_then_pulled]
        assert results["late"].sync_count >= 2
        await a.synchronize("late")
        mine, other = await b.dataset("late"), await a.dataset("late")
        assert await mine.get("theirs") == "a" and await other.get("mine") == "b"
        assert await mine.get("shared") == await other.get("shared")
