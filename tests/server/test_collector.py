"""`tune_collector` (start-up objects frozen, thresholds raised) and `QuietCollector`
(young collections run at quiet moments), for the serving process."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from cogsync.server.collector import SERVER_THRESHOLDS, QuietCollector, tune_collector


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


class _Meter:
    """A process clock and CPU clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = self.used = 0.0

    def spend(self, seconds: float, cpu: float) -> None:
        self.now += seconds
        self.used += cpu


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()  # the counts move only by what the test allocates
    yield
    gc.enable()


@pytest.mark.usefixtures("collector_off")
def test_a_quiet_process_collects_what_a_burst_left_young() -> None:
    meter = _Meter()
    quiet = QuietCollector(cpu=lambda: meter.used, clock=lambda: meter.now)
    burst = [[n] for n in range(20_000)]  # what new connections leave alive
    assert gc.get_count()[0] >= 20_000
    meter.spend(0.25, 0.2)  # busy: 80% of a core
    assert not quiet.tick() and gc.get_count()[0] >= 20_000
    meter.spend(0.25, 0.01)  # quiet
    assert quiet.tick() and quiet.collections == 1
    assert gc.get_count()[:2] == (0, 0)
    assert any(o is burst for o in gc.get_objects(generation=2))  # out of the young ones' way
    meter.spend(0.25, 0.0)
    assert not quiet.tick()  # nothing young to scan


@pytest.mark.usefixtures("collector_off")
def test_a_quiet_process_also_collects_a_middle_generation_left_behind() -> None:
    meter = _Meter()
    quiet = QuietCollector(cpu=lambda: meter.used, clock=lambda: meter.now)
    kept = [[n] for n in range(100)]
    gc.collect(0)  # a young collection moved them to the middle generation
    assert gc.get_count()[1] == 1 and any(o is kept for o in gc.get_objects(generation=1))
    meter.spend(0.25, 0.0)
    assert quiet.tick() and any(o is kept for o in gc.get_objects(generation=2))


async def test_runs_until_cancelled() -> None:
    quiet = QuietCollector(interval=0.01)
    task = asyncio.create_task(quiet.run())
    await asyncio.sleep(0.1)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
