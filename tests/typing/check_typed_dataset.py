"""Checked by mypy --strict (tests/typed/test_typing.py): what the typed APIs promise."""

from __future__ import annotations

from pydantic import BaseModel

import cogsync


class Prefs(BaseModel):
    theme: str = "light"


class Todo(BaseModel):
    id: str


def blocking(client: cogsync.Client) -> None:
    prefs = client.dataset("prefs", model=Prefs)
    value: Prefs = prefs.get()
    prefs.put(value)
    typed: cogsync.TypedDataset[Prefs] = prefs
    todos = client.dataset("todos", model=cogsync.TypedDataset.record_model(Todo))
    item: Todo | None = todos.get("1")
    every: dict[str, Todo] = todos.items()
    plain: cogsync.Dataset = client.dataset("plain")
    text: str | None = plain.get("k")
    print(typed, item, every, text)


async def asynchronous(client: cogsync.AsyncClient) -> None:
    prefs = await client.dataset("prefs", model=Prefs)
    value: Prefs = await prefs.get()
    await prefs.put(value)
    plain: cogsync.AsyncDataset = await client.dataset("plain")
    resolver = cogsync.merge_json(on_key_conflict=cogsync.last_writer_wins)
    await plain.synchronize(on_conflict=resolver)
    await prefs.synchronize(on_conflict=cogsync.merge_json)
