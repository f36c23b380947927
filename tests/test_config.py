"""The client `Config` (``cogsync.json``): validated by pydantic, refused with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cogsync.config import Config
from cogsync.exceptions import ConfigError

GOOD = {
    "region": "us-east-1",
    "identity_pool_id": "us-east-1:pool",
    "graphql_url": "http://127.0.0.1:1/graphql",
    "realtime_url": "ws://127.0.0.1:1/graphql/realtime",
    "identity_endpoint": "http://127.0.0.1:1/",
}


def test_a_written_config_loads_back(tmp_path: Path) -> None:
    config = Config.from_dict({**GOOD, "written_by": "a newer release"})
    config.dump(tmp_path / "c.json")
    assert Config.load(tmp_path / "c.json") == config
    assert Config.from_dict({**GOOD, "identity_endpoint": None}).identity_endpoint is None


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"region": ""}, "lacks region"),
        ({"graphql_url": 5}, "lacks graphql_url"),
        ({"realtime_url": None, "region": None}, "lacks region, realtime_url"),
        ({"identity_endpoint": 3}, "identity_endpoint must be a URL string or null"),
    ],
)
def test_bad_fields_are_one_line_config_errors(change: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words) as caught:
        Config.from_dict({**GOOD, **change})
    assert "\n" not in str(caught.value)


def test_a_missing_key_and_a_non_object(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="lacks identity_pool_id"):
        Config.from_dict({k: v for k, v in GOOD.items() if k != "identity_pool_id"})
    (tmp_path / "c.json").write_text(json.dumps([GOOD]))
    with pytest.raises(ConfigError, match="must be a JSON object"):
        Config.load(tmp_path / "c.json")
