"""Random multi-device histories against the in-memory server converge without losing writes."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from cogsync.testing.stateful import SyncMachine

_quick = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
_long = settings(_quick, max_examples=1000, stateful_step_count=80)


def test_devices_converge_in_random_histories() -> None:
    run = SyncMachine.TestCase
    run.settings = _quick
    run().runTest()


@pytest.mark.slow
def test_devices_converge_in_long_random_histories() -> None:
    run = SyncMachine.TestCase
    run.settings = _long
    run().runTest()
