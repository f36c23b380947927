"""A sync trigger for the shutdown test: marks that a push is in flight, then holds it."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def hold(identity_id: str, dataset_name: str, patches: Any) -> None:
    """Touch ``$COGSYNC_TEST_MARK`` and sleep 1.5 s (the push is then mid-flight)."""
    Path(os.environ["COGSYNC_TEST_MARK"]).write_text(str(len(patches)))
    time.sleep(1.5)
