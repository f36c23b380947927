"""``python -m cogsync``: the ``cogsync`` command line."""

from __future__ import annotations

import sys

from cogsync.cli import main

if __name__ == "__main__":
    sys.exit(main())
