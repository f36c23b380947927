"""``python -m cogsync.migrate``: the same as ``cogsync migrate``."""

import sys

from cogsync.migrate.cli import main

sys.exit(main())
