"""Typed settings: a pydantic model synced field by field across two devices.

Both devices edit different fields offline; after syncing, both edits survive and no
conflict callback runs. Then both change the same field, and the callback sees that field.

Run against a server:  cogsync serve --data ./data &
    python examples/typed_settings.py --config cogsync.json --admin data/admin.json
or standalone (starts an embedded server): python examples/typed_settings.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Literal

from _server import server_and_logins
from pydantic import BaseModel, Field

import cogsync


class Settings(BaseModel):
    theme: Literal["dark", "light"] = "light"
    font_size: int = Field(12, ge=6, le=72)
    shortcuts: dict[str, str] = Field(default_factory=dict)


def main(argv: list[str] | None = None) -> int:
    with server_and_logins(argv, "sam@example.com") as (config, logins):
        tmp = Path(tempfile.mkdtemp())
        with (
            cogsync.Client(config, db_path=tmp / "phone.db", logins=logins) as phone,
            cogsync.Client(config, db_path=tmp / "laptop.db", logins=logins) as laptop,
        ):
            on_phone = phone.dataset("settings", model=Settings)
            on_laptop = laptop.dataset("settings", model=Settings)
            on_phone.put(Settings(shortcuts={"save": "ctrl+s"}))
            on_phone.synchronize()
            on_laptop.synchronize()

            # Offline: each device changes other fields; a put writes only changed fields.
            on_phone.put(on_phone.get().model_copy(update={"theme": "dark"}))
            edited = on_laptop.get()
            shortcuts = {**edited.shortcuts, "quit": "ctrl+q"}
            on_laptop.put(edited.model_copy(update={"font_size": 16, "shortcuts": shortcuts}))

            asked: list[str] = []

            def on_conflict(
                name: str, conflicts: list[cogsync.Conflict]
            ) -> list[cogsync.Resolution]:
                asked.extend(c.key for c in conflicts)
                return cogsync.last_writer_wins(name, conflicts)

            on_phone.synchronize(on_conflict=on_conflict)
            on_laptop.synchronize(on_conflict=on_conflict)
            on_phone.synchronize(on_conflict=on_conflict)
            print("after offline edits:", on_phone.get())
            print("conflict callbacks:", asked)

            # Both change the same field: the callback sees exactly that field.
            on_phone.put(on_phone.get().model_copy(update={"font_size": 20}))
            on_laptop.put(on_laptop.get().model_copy(update={"font_size": 18}))
            on_phone.synchronize(on_conflict=on_conflict)
            on_laptop.synchronize(on_conflict=on_conflict)
            on_phone.synchronize()
            print("conflict on:", asked)

            try:
                on_phone.put(Settings.model_construct(theme="dark", font_size=500))
            except cogsync.InvalidValueError as exc:
                print("refused:", exc)
            same = on_phone.get() == on_laptop.get()
            print("converged:", "yes" if same else "no")
            return 0 if same and asked == ["font_size"] else 1


if __name__ == "__main__":
    sys.exit(main())
