"""One botocore session for the process: SigV4 signers and service clients share its data.

Building a session loads botocore's models and endpoint data again (about 26,000 objects,
left for the cycle collector, and tens of milliseconds); a signer or client made from the
warm one costs little. Signers and clients take their region and credentials explicitly,
so the session is never a source of either.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import botocore.session
from botocore.config import Config as BotoConfig

__all__ = ["new_client", "shared_session"]

_LOCK = threading.Lock()  # a session is not thread-safe; the clients it makes are


@functools.cache
def shared_session() -> botocore.session.Session:
    """The process's botocore session."""
    return botocore.session.get_session()


def new_client(
    service: str, *, region_name: str, endpoint_url: str | None, config: BotoConfig
) -> Any:
    """A botocore client for ``service`` made from `shared_session`."""
    with _LOCK:
        return shared_session().create_client(
            service, region_name=region_name, endpoint_url=endpoint_url, config=config
        )
