"""Typed datasets on one device: keyed collections, schema upgrades, the blocking facade."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

import cogsync
from cogsync import AsyncClient, Config
from cogsync.server.runner import EmbeddedServer
from cogsync.typed.schema import VERSION_KEY

OFFLINE = Config("us-east-1", "us-east-1:pool", "http://127.0.0.1:9/", "http://127.0.0.1:9/")


class Todo(BaseModel):
    id: str
    title: str
    done: bool = False


class SettingsV1(BaseModel):
    colour: str = "blue"
    volume: int = 5


class SettingsV2(BaseModel):
    """Renames ``colour`` to ``theme`` and adds ``muted``."""

    cogsync_version: ClassVar[int] = 2
    theme: str = "blue"
    volume: int = 5
    muted: bool = False

    @classmethod
    def cogsync_upgrade(cls, data: dict[str, Any], version: int) -> dict[str, Any]:
        if version < 2 and "theme" not in data and "colour" in data:
            data["theme"] = data["colour"]
        return data


async def test_keyed_collection(tmp_path: Path) -> None:
    async with AsyncClient(OFFLINE, db_path=tmp_path / "d.db") as client:
        todos = await client.dataset("todos", model=cogsync.TypedDataset.record_model(Todo))
        await todos.put(Todo(id="1", title="milk"))
        await todos.put(Todo(id="2", title="eggs", done=True))
        assert await todos.get("1") == Todo(id="1", title="milk")
        assert await todos.get("nope") is None
        assert await todos.items() == {
            "1": Todo(id="1", title="milk"),
            "2": Todo(id="2", title="eggs", done=True),
        }
        raw = await todos.dataset.get_all()
        assert json.loads(raw["2"]) == {"id": "2", "title": "eggs", "done": True}
        await todos.remove("1")
        assert list(await todos.items()) == ["2"]
        revision = (await todos.dataset.record("2")).revision  # type: ignore[union-attr]
        await todos.put(Todo(id="2", title="eggs", done=True))  # unchanged: nothing written
        assert (await todos.dataset.record("2")).revision == revision  # type: ignore[union-attr]
        await todos.dataset.put("3", '{"id": "3"}')  # a newer app's item, missing "title"
        with pytest.raises(cogsync.RecordValidationError) as caught:
            await todos.items()
        assert set(caught.value.errors) == {"3"} and "title" in caught.value.errors["3"]
        with pytest.raises(cogsync.RecordValidationError):
            await todos.put(Todo(id="3", title="x"))
        assert await todos.dataset.get("3") == '{"id": "3"}'
        with pytest.raises(cogsync.InvalidKeyError):
            await todos.put(Todo(id=VERSION_KEY, title="x"))


async def test_schema_upgrade_on_read_and_rename_keeps_the_old_field(tmp_path: Path) -> None:
    async with AsyncClient(OFFLINE, db_path=tmp_path / "d.db") as client:
        old = await client.dataset("settings", model=SettingsV1)
        await old.put(SettingsV1(colour="red", volume=7))
        new = await client.dataset("settings", model=SettingsV2)
        assert await new.get() == SettingsV2(theme="red", volume=7)
        await new.put(SettingsV2(theme="red", volume=7, muted=True))
        assert await new.dataset.get_all() == {
            "colour": '"red"',  # kept for devices still on version 1
            "theme": '"red"',
            "volume": "7",
            "muted": "true",
            VERSION_KEY: "2",
        }
        assert await old.get() == SettingsV1(colour="red", volume=7)  # old devices read on
        assert await new.get() == SettingsV2(theme="red", volume=7, muted=True)


def test_blocking_client_returns_typed_views(tmp_path: Path) -> None:
    with (
        EmbeddedServer(tmp_path / "server", port=0) as server,
        cogsync.Client(server.config, db_path=tmp_path / "a.db") as client,
    ):
        prefs = client.dataset("prefs", model=SettingsV1)
        assert isinstance(prefs, cogsync.TypedDataset)
        prefs.put(SettingsV1(volume=9))
        assert prefs.synchronize().pushed == 1
        assert prefs.get() == SettingsV1(volume=9)
        todos = client.dataset("todos", model=cogsync.TypedDataset.record_model(Todo))
        assert isinstance(todos, cogsync.TypedRecords)
        todos.put(Todo(id="a", title="t"))
        assert todos.items() == {"a": Todo(id="a", title="t")}
        assert todos.get("a") == Todo(id="a", title="t")
        todos.remove("a")
        assert todos.synchronize().pushed == 0
        assert isinstance(client.dataset("plain"), cogsync.Dataset)
