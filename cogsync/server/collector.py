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
"""

from __future__ import annotations

import gc

__all__ = ["SERVER_THRESHOLDS", "tune_collector"]

SERVER_THRESHOLDS = (50_000, 2, 1_000)
"""The collector's thresholds (young, middle, old) for a serving process."""


def tune_collector(thresholds: tuple[int, int, int] = SERVER_THRESHOLDS) -> None:
    """Freeze what start-up left alive and raise the collector's thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
