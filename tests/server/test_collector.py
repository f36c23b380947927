"""`tune_collector`: start-up objects frozen, thresholds raised, for the serving process."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from cogsync.server.collector import SERVER_THRESHOLDS, tune_collector


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_start_up_objects_leave_the_collectors_sight() -> None:
    alive = object.__new__(type("StartUp", (), {}))
    tune_collector()
    assert gc.get_threshold() == SERVER_THRESHOLDS
    assert gc.get_freeze_count() > 0
    assert not any(o is alive for o in gc.get_objects())  # frozen: never scanned again
    later = [alive]
    assert any(o is later for o in gc.get_objects())  # what comes after is collected as usual
