"""mypy sees the typed APIs' types: a checked file passes, a wrong assignment fails."""

from __future__ import annotations

from pathlib import Path

from mypy import api

CHECKED = Path(__file__).parents[1] / "typing" / "check_typed_dataset.py"
WRONG = """
from pydantic import BaseModel
import cogsync

class Prefs(BaseModel):
    theme: str = "light"

def wrong(client: cogsync.Client) -> None:
    prefs = client.dataset("prefs", model=Prefs)
    text: str = prefs.get()
"""


def mypy(*paths: Path, cache: Path) -> tuple[str, int]:
    out, err, status = api.run(
        ["--strict", "--no-error-summary", "--cache-dir", str(cache), *map(str, paths)]
    )
    return out + err, status


def test_typed_dataset_get_is_the_model(tmp_path: Path) -> None:
    out, status = mypy(CHECKED, cache=tmp_path / "cache")
    assert status == 0, out
    wrong = tmp_path / "wrong.py"
    wrong.write_text(WRONG)
    out, status = mypy(wrong, cache=tmp_path / "cache")
    assert status == 1
    assert (
        'Incompatible types in assignment (expression has type "Prefs", variable has type "str")'
        in out
    )
