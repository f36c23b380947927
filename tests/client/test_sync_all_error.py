"""`SyncAllError`: what a partly failed `synchronize_all` raises."""

from __future__ import annotations

import pytest

import cogsync
from cogsync import AsyncClient, SyncAllError
from cogsync.exceptions import ConflictError, DatasetLimitExceededError, OfflineError
from cogsync.models import SyncResult
from cogsync.store.memory import MemoryStore
from cogsync.testing.fakes import MemoryBackend, MemoryServer

ID = "eu-west-1:identity-1"


def test_it_is_also_the_first_failure() -> None:
    first = ConflictError("the server holds newer data", key="k", current=3, expected=2)
    results = {"b": SyncResult(dataset_name="b")}
    errors: dict[str, Exception] = {"a": first, "c": OfflineError("gone")}
    error = SyncAllError.from_failures(results, errors)
    assert isinstance(error, SyncAllError)
    assert isinstance(error, ConflictError)
    assert isinstance(error, cogsync.CogsyncError)
    assert not isinstance(error, OfflineError)
    assert error.results == results and error.errors == errors
    assert (error.key, error.current, error.expected) == ("k", 3, 2)
    assert error.retryable is True
    assert error.args == first.args
    assert str(error) == "2 dataset(s) failed to sync (a, c): the server holds newer data"


def test_attributes_and_retryable_follow_the_first_failure() -> None:
    first = DatasetLimitExceededError("too many datasets", limit=20, attempted=21)
    error = SyncAllError.from_failures({}, {"x": first})
    assert isinstance(error, DatasetLimitExceededError)
    assert (error.limit, error.attempted, error.retryable) == (20, 21, False)
    assert type(error) is type(SyncAllError.from_failures({}, {"y": first}))  # made once


def test_a_foreign_first_failure_keeps_its_class() -> None:
    error = SyncAllError.from_failures({}, {"a": KeyError("k")})
    assert isinstance(error, KeyError) and isinstance(error, SyncAllError)
    assert "'k'" in str(error)


def test_it_can_be_raised_plainly() -> None:
    error = SyncAllError("nothing synced", errors={"a": OfflineError("gone")})
    assert error.results == {} and set(error.errors) == {"a"}
    assert str(error) == "1 dataset(s) failed to sync (a): nothing synced"
    assert not error.retryable


async def test_synchronize_all_raises_it_with_results_and_errors() -> None:
    server = MemoryServer()
    backend = MemoryBackend(server, ID)
    async with AsyncClient(store=MemoryStore(), backend=backend, identity_id=ID) as client:
        for name in ("a", "b"):
            await (await client.dataset(name)).put("k", name)
        await client.synchronize_all()  # on the server: the next sync of each pulls first
        for name in ("a", "b"):
            await (await client.dataset(name)).put("k", name + "2")
        await client.refresh_dataset_metadata()
        backend.fail_next("list_records")  # the first dataset's pull
        with pytest.raises(OfflineError) as info:
            await client.synchronize_all(concurrency=1)
        error = info.value
        assert isinstance(error, SyncAllError)
        assert set(error.results) == {"b"} and set(error.errors) == {"a"}
        assert isinstance(error.errors["a"], OfflineError)
        assert error.__cause__ is error.errors["a"]
        assert error.retryable
        assert str(error).startswith("1 dataset(s) failed to sync (a): ")
        assert set(await client.synchronize_all()) == {"a", "b"}  # the fault is gone
