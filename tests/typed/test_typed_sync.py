"""Typed datasets on two devices of one user, through a real `cogsync serve`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar, Literal

import pytest
from pydantic import BaseModel, Field

import cogsync
from cogsync import AsyncClient
from cogsync.models import Conflict, Resolution
from cogsync.server.runner import EmbeddedServer
from cogsync.testing.servers import developer_logins


class Prefs(BaseModel):
    theme: Literal["dark", "light"] = "light"
    font_size: int = Field(12, ge=6)
    layout: dict[str, int] = Field(default_factory=dict)


class NewerPrefs(Prefs):
    """The same dataset as a newer app version declares it."""

    cogsync_version: ClassVar[int] = 2
    theme: Literal["dark", "light", "solarized"] = "light"  # type: ignore[assignment]


class Spy:
    """An ``on_key_conflict``/``on_conflict`` resolver that records every conflict it sees."""

    def __init__(self) -> None:
        self.seen: list[Conflict] = []

    def __call__(self, dataset_name: str, conflicts: list[Conflict]) -> list[Resolution]:
        self.seen.extend(conflicts)
        return [c.resolve_with_local_record() for c in conflicts]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[EmbeddedServer]:
    async with EmbeddedServer(tmp_path / "server", port=0) as srv:
        yield srv


async def devices(
    server: EmbeddedServer, tmp_path: Path, user: str
) -> tuple[AsyncClient, AsyncClient]:
    logins = await developer_logins(server, user)
    phone = AsyncClient(server.config, db_path=tmp_path / "phone.db", logins=logins)
    tablet = AsyncClient(server.config, db_path=tmp_path / "tablet.db", logins=logins)
    return phone, tablet


async def both_synced(
    phone: AsyncClient, tablet: AsyncClient, start: Prefs
) -> tuple[cogsync.AsyncTypedDataset[Prefs], cogsync.AsyncTypedDataset[Prefs]]:
    a = await phone.dataset("prefs", model=Prefs)
    b = await tablet.dataset("prefs", model=Prefs)
    await a.put(start)
    await a.synchronize()
    await b.synchronize()
    assert await b.get() == start
    return a, b


@pytest.mark.parametrize("phone_first", [True, False])
async def test_different_fields_edited_offline_both_survive_without_a_conflict(
    server: EmbeddedServer, tmp_path: Path, phone_first: bool
) -> None:
    phone, tablet = await devices(server, tmp_path, f"ann-{phone_first}")
    async with phone, tablet:
        a, b = await both_synced(phone, tablet, Prefs(layout={"width": 1, "height": 2}))
        await a.put(Prefs(theme="dark", layout={"width": 1, "height": 2}))
        await b.put(Prefs(font_size=16, layout={"width": 1, "height": 2}))
        spy = Spy()
        first, second = (a, b) if phone_first else (b, a)
        await first.synchronize(on_conflict=spy)
        result = await second.synchronize(on_conflict=spy)
        await first.synchronize(on_conflict=spy)
        assert spy.seen == [] and result.conflicts == ()
        expected = Prefs(theme="dark", font_size=16, layout={"width": 1, "height": 2})
        assert await a.get() == expected and await b.get() == expected
        # Only the edited field was written: one record pushed per device.
        assert result.pushed == 1


async def test_same_field_edited_on_both_reaches_the_callback_with_exactly_that_key(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    phone, tablet = await devices(server, tmp_path, "bea")
    async with phone, tablet:
        a, b = await both_synced(phone, tablet, Prefs())
        await a.put(Prefs(font_size=31))
        await b.put(Prefs(theme="dark", font_size=30))
        await a.synchronize()
        spy = Spy()
        result = await b.synchronize(on_conflict=spy)
        assert [(c.key, c.path) for c in spy.seen] == [("font_size", ())]
        assert [c.key for c in result.conflicts] == ["font_size"]
        await a.synchronize()
        assert await a.get() == await b.get() == Prefs(theme="dark", font_size=30)


async def test_members_of_an_object_field_merge_and_only_a_clash_is_asked(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    phone, tablet = await devices(server, tmp_path, "cid")
    async with phone, tablet:
        a, b = await both_synced(phone, tablet, Prefs(layout={"width": 1, "height": 2, "x": 0}))
        await a.put(Prefs(layout={"width": 10, "height": 2, "x": 5}))
        await b.put(Prefs(layout={"width": 1, "height": 20, "x": 6}))
        await a.synchronize()
        spy = Spy()
        result = await b.synchronize(on_conflict=cogsync.merge_json(on_key_conflict=spy))
        assert [(c.key, c.path, c.local.value, c.remote.value) for c in spy.seen] == [
            ("layout", ("x",), "6", "5")
        ]
        assert [c.key for c in result.conflicts] == ["layout"]
        await a.synchronize()
        expected = Prefs(layout={"width": 10, "height": 20, "x": 6})
        assert await a.get() == await b.get() == expected


async def test_invalid_value_is_refused_with_nothing_written(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    async with AsyncClient(server.config, db_path=tmp_path / "d.db") as client:
        prefs = await client.dataset("prefs", model=Prefs)
        await prefs.put(Prefs(font_size=14))
        before = await prefs.dataset.get_all()
        bad = Prefs(theme="dark")
        bad.font_size = 2  # no validation on assignment: caught by put
        with pytest.raises(cogsync.InvalidValueError, match="font_size"):
            await prefs.put(bad)
        with pytest.raises(cogsync.InvalidValueError, match="Prefs instance"):
            await prefs.put({"theme": "dark"})  # type: ignore[arg-type]
        assert await prefs.dataset.get_all() == before
        assert await prefs.get() == Prefs(font_size=14)


async def test_record_from_a_newer_app_is_reported_and_left_untouched(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    logins = await developer_logins(server, "dee")
    async with (
        AsyncClient(server.config, db_path=tmp_path / "new.db", logins=logins) as new_app,
        AsyncClient(server.config, db_path=tmp_path / "old.db", logins=logins) as old_app,
    ):
        newer = await new_app.dataset("prefs", model=NewerPrefs)
        await newer.put(NewerPrefs(theme="solarized", font_size=15))
        await newer.synchronize()
        older = await old_app.dataset("prefs", model=Prefs)
        await older.synchronize()
        with pytest.raises(cogsync.RecordValidationError) as caught:
            await older.get()
        assert set(caught.value.errors) == {"theme"}
        assert caught.value.values == {"theme": '"solarized"'}
        with pytest.raises(cogsync.RecordValidationError):
            await older.put(Prefs(theme="dark", font_size=15))  # would overwrite "solarized"
        assert not (await older.dataset.record("theme")).dirty  # type: ignore[union-attr]
        await older.synchronize()
        await newer.synchronize()
        assert (await newer.get()).theme == "solarized"  # untouched on the server
        await older.put(Prefs(theme="dark"), overwrite_invalid=True)  # on purpose
        await older.synchronize()
        await newer.synchronize()
        assert (await newer.get()).theme == "dark"
