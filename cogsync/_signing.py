"""SigV4 signers for AppSync-style requests, all sharing one botocore session."""

from __future__ import annotations

from botocore.credentials import Credentials
from gql.transport.appsync_auth import AppSyncIAMAuthentication

from cogsync._aws_session import shared_session

__all__ = ["iam_auth"]


def iam_auth(host: str, region: str, credentials: Credentials) -> AppSyncIAMAuthentication:
    """A signer for ``host`` in ``region`` with ``credentials`` (a new one per renewal)."""
    return AppSyncIAMAuthentication(
        host=host, region_name=region, credentials=credentials, session=shared_session()
    )
