"""The garbage collector's settings for the long-lived ``cogsync serve`` process.

CPython's cyclic collector pauses the event loop for as long as it takes to scan the
objects it tracks. A server holding thousands of real-time connections tracks millions
of objects, so with the default thresholds a full collection paused every connection for
most of a second. After start-up `tune_collector` moves everything alive (modules, the
schema, the settings) out of the collector's sight with `gc.freeze`, and raises the
thresholds so that young collections run per ~50,000 new container objects instead of 700
and full ones rarely: what a request allocates is freed by reference counting, and the
collector only has cycles to find. Every third collection takes the middle generation
too: it holds what survived the two before, so its pause stays near a young one's
(while 10,000 devices connected, a middle threshold of 20 let it grow to ~1 million
objects and pause for ~0.4 s of CPU; with 2, under 0.1 s), and the old threshold is raised
to match, so full collections stay as rare. Only ``cogsync serve`` calls it: an
application embedding `EmbeddedServer` keeps its own settings.

`QuietCollector` runs the young and middle collections itself when the process is quiet.
What a burst of new connections leaves alive (~250 objects each) sits in the young
generations until allocation triggers the next collections; if load arrives first, that
one-time scan of every new connection (~90 ms after 1,000 connected at once) pauses the
loop under load, and the queue it leaves takes a second to drain. Done at a quiet moment,
the same scan costs no waiting request anything, and the connections' objects are then in
the old generation, out of every young collection's way.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable

__all__ = ["SERVER_THRESHOLDS", "QuietCollector", "tune_collector"]

_log = logging.getLogger(__name__)

SERVER_THRESHOLDS = (50_000, 2, 1_000)
"""The collector's thresholds (young, middle, old) for a serving process."""


def tune_collector(thresholds: tuple[int, int, int] = SERVER_THRESHOLDS) -> None:
    """Freeze what start-up left alive and raise the collector's thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)


class QuietCollector:
    """Collects the young and middle generations when the process is quiet.

    Every ``interval`` seconds `tick` looks at the CPU the process used since the last
    tick; below ``busy`` (a fraction of one core), and with at least ``young`` objects
    new since the last collection or a middle generation not yet collected, it collects
    generation 1 (young and middle) at once. Under load it does nothing: the thresholds
    of `tune_collector` apply as usual. ``cpu`` and ``clock`` are for tests.
    """

    def __init__(
        self,
        interval: float = 0.25,
        busy: float = 0.5,
        young: int = 5_000,
        cpu: Callable[[], float] = time.process_time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval, self.busy, self.young = interval, busy, young
        self.collections = 0
        self._cpu, self._clock = cpu, clock
        self._last = (clock(), cpu())

    def tick(self) -> bool:
        """Collect if the process was quiet since the last tick and there is something
        young to scan; return whether it collected."""
        now, used = self._clock(), self._cpu()
        (then, before), self._last = self._last, (now, used)
        if now <= then or (used - before) / (now - then) >= self.busy:
            return False
        new, young_collections, _ = gc.get_count()
        if new < self.young and young_collections == 0:
            return False
        started = time.perf_counter()
        gc.collect(1)
        self.collections += 1
        _log.debug(
            "collected %d young objects at a quiet moment in %.1f ms",
            new,
            (time.perf_counter() - started) * 1000,
        )
        self._last = (self._clock(), self._cpu())  # the collection's own CPU is no load
        return True

    async def run(self) -> None:
        """Tick every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            self.tick()
