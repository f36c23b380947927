"""Devices that share the costly parts: one boto3 client and one botocore session.

Building a boto3 client, or the botocore session gql builds for every request signer, costs
tens of milliseconds; thousands of short-lived devices would spend most of the suite's time
there. Both are thread-safe, so a worker shares one of each between all its devices.
"""

from __future__ import annotations

from typing import Any

import boto3
import botocore.session
from botocore import UNSIGNED
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials
from gql.transport.appsync_auth import AppSyncIAMAuthentication

from cogsync.auth.cognito import CognitoIdentity
from cogsync.config import Config
from cogsync.remote.graphql import GraphQLBackend

__all__ = ["SharedClientIdentity", "SharedSessionBackend", "identity_client"]

_SESSION: list[Any] = []


def identity_client(config: Config) -> Any:
    """A boto3 ``cognito-identity`` client for ``config``'s identity endpoint."""
    return boto3.session.Session().client(
        "cognito-identity",
        region_name=config.region,
        endpoint_url=config.identity_endpoint,
        config=BotoConfig(
            signature_version=UNSIGNED, retries={"mode": "standard", "max_attempts": 6}
        ),
    )


class SharedClientIdentity(CognitoIdentity):
    """A `CognitoIdentity` calling the identity API through a shared boto3 client."""

    def __init__(self, config: Config, client: Any, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._client = client


class SharedSessionBackend(GraphQLBackend):
    """A `GraphQLBackend` whose request signers share one botocore session."""

    def _signer(self, credentials: Credentials) -> AppSyncIAMAuthentication:
        if not _SESSION:
            _SESSION.append(botocore.session.get_session())
        return AppSyncIAMAuthentication(
            host=self._host,
            region_name=self._config.region,
            credentials=credentials,
            session=_SESSION[0],
        )
