"""SigV4 signers for AppSync-style requests, all sharing one botocore session."""

from __future__ import annotations

import functools

import botocore.session
from botocore.credentials import Credentials
from gql.transport.appsync_auth import AppSyncIAMAuthentication

__all__ = ["iam_auth"]


@functools.cache
def _session() -> botocore.session.Session:
    # Building a botocore session costs milliseconds; the signers take their credentials
    # and region explicitly, so one session (never a source of credentials) serves all.
    return botocore.session.get_session()


def iam_auth(host: str, region: str, credentials: Credentials) -> AppSyncIAMAuthentication:
    """A signer for ``host`` in ``region`` with ``credentials`` (a new one per renewal)."""
    return AppSyncIAMAuthentication(
        host=host, region_name=region, credentials=credentials, session=_session()
    )
