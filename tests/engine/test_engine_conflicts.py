"""The ready-made conflict resolvers and the check of a resolver's answer."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cogsync.engine.conflicts import check_resolutions, last_writer_wins, local_wins, remote_wins
from cogsync.exceptions import ConflictError
from cogsync.models import Conflict, Record, Resolution

EARLY = datetime(2026, 3, 1, 8, tzinfo=UTC)
LATE = datetime(2026, 3, 1, 9, tzinfo=UTC)


def conflict(
    local_at: datetime | None,
    remote_at: datetime | None,
    local_by: str | None = "dev-a",
    remote_by: str | None = "dev-b",
) -> Conflict:
    local = Record("k", "local", 1, local_at, local_by, local_at, dirty=True, revision=2)
    remote = Record("k", "remote", 5, remote_at, remote_by, remote_at)
    return Conflict("k", local, remote)


@pytest.mark.parametrize(
    ("c", "winner"),
    [
        (conflict(LATE, EARLY), "local"),
        (conflict(EARLY, LATE), "remote"),
        (conflict(EARLY, None), "local"),  # a missing date counts as oldest
        (conflict(None, EARLY), "remote"),
        (conflict(EARLY, EARLY, local_by="dev-z", remote_by="dev-b"), "local"),
        (conflict(EARLY, EARLY, local_by="dev-a", remote_by="dev-b"), "remote"),
        (conflict(EARLY, EARLY, local_by="dev-a", remote_by=None), "local"),
        (conflict(EARLY, EARLY, local_by="same", remote_by="same"), "remote"),
        (conflict(None, None, local_by=None, remote_by=None), "remote"),
    ],
)
def test_last_writer_wins_orders_by_date_then_device_then_prefers_the_server(
    c: Conflict, winner: str
) -> None:
    (resolution,) = last_writer_wins("ds", [c])
    assert resolution.source == winner
    assert resolution.value == winner


def test_last_writer_wins_is_symmetric_between_the_two_devices() -> None:
    # Seen from either side, the same version wins: devices converge.
    a = Record("k", "from-a", 3, EARLY, "dev-a", EARLY)
    b = Record("k", "from-b", 3, EARLY, "dev-b", EARLY)
    on_a = last_writer_wins("ds", [Conflict("k", a, b)])[0].value
    on_b = last_writer_wins("ds", [Conflict("k", b, a)])[0].value
    assert on_a == on_b == "from-b"


def test_remote_wins_and_local_wins_answer_every_conflict() -> None:
    cs = [conflict(LATE, EARLY), conflict(EARLY, LATE)]
    assert [r.value for r in remote_wins("ds", cs)] == ["remote", "remote"]
    assert [r.value for r in local_wins("ds", cs)] == ["local", "local"]


def test_check_resolutions_indexes_a_complete_answer_by_key() -> None:
    c = conflict(LATE, EARLY)
    other = Conflict("j", c.local, c.remote)
    answer = [other.resolve_with_value(None), c.resolve_with_remote_record()]
    assert check_resolutions("ds", [c, other], answer) == {
        "k": Resolution("k", "remote", "remote"),
        "j": Resolution("j", None, "value"),
    }


def test_check_resolutions_names_the_first_unresolved_key() -> None:
    c = conflict(LATE, EARLY)
    with pytest.raises(ConflictError, match="1 conflict") as caught:
        check_resolutions("ds", [c], ())
    assert (caught.value.key, caught.value.current, caught.value.expected) == ("k", 5, 1)
    assert caught.value.retryable
