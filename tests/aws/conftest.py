"""The AWS backend harness: moto server as DynamoDB, AWS's AppSync simulator running
server_schema/ (template.yaml, resolvers, schema.graphql) through server_schema/simulator.

Started once per session. Needs only ``node`` (and ``npm`` the first time: node modules
are installed from the lockfile with ``npm ci`` when absent); without ``node`` the tests
of this folder are skipped with the reason printed.

The simulator checks no SigV4 signature and knows no Cognito identities: the launcher maps
access key ids to identity ids (test-only), from a JSON file that `SimulatorBackend.identity`
writes for wire-level tests, and from an `IdentityResolver` that answers for the credentials
an in-process `cogsync serve` issued. That server's Cognito Identity API is the
``identity_endpoint`` of `SimulatorBackend.config`, so unchanged `Client`s and
`GraphQLBackend`s get distinct temporary credentials per identity and talk GraphQL to the
simulator. See server_schema/README.md for every gap.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.credentials import Credentials
from gql import Client
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.appsync_auth import AppSyncIAMAuthentication
from moto.server import ThreadedMotoServer

from cogsync.config import Config
from cogsync.demo import developer_login
from cogsync.server.runner import EmbeddedServer
from tests.aws.identity_resolver import IdentityResolver
from tests.aws.lambda_endpoint import LambdaEndpoint
from tests.moving.operator_trigger import handler as operator_trigger

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT / "server_schema"
SIMULATOR_DIR = SCHEMA_DIR / "simulator"
REGION = "us-east-1"
SYNC_TRIGGER_ARN = "arn:aws:lambda:us-east-1:123456789012:function:cogsync-sync-trigger"
_START_TIMEOUT = 60.0


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``aws`` marker (tests of server_schema/ on the AppSync simulator)."""
    config.addinivalue_line(
        "markers", "aws: server_schema/ on AWS's AppSync simulator and moto (needs node)"
    )


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation YAML, keeping short-form tags (!Ref, !GetAtt, ...) as plain data."""


def _any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node)}
    return {suffix: loader.construct_mapping(node)}  # type: ignore[arg-type]


_CfnLoader.add_multi_constructor("!", _any_tag)


def template_tables() -> dict[str, dict[str, Any]]:
    """The DynamoDB tables of template.yaml: logical id -> Properties."""
    template = yaml.load((SCHEMA_DIR / "template.yaml").read_text(), Loader=_CfnLoader)
    return {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::DynamoDB::Table"
    }


def create_tables(dynamodb: Any, prefix: str = "") -> dict[str, str]:
    """Create the template's tables (keys and indexes as declared); return id -> name."""
    names = {}
    for logical_id, props in template_tables().items():
        params: dict[str, Any] = {
            "TableName": prefix + logical_id,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        for index_kind in ("LocalSecondaryIndexes", "GlobalSecondaryIndexes"):
            if props.get(index_kind):
                params[index_kind] = props[index_kind]
        dynamodb.create_table(**params)
        names[logical_id] = params["TableName"]
    return names


@dataclass
class SimulatorBackend:
    """The running harness: endpoints, the DynamoDB client, and identity registration."""

    url: str
    realtime_url: str
    dynamodb: Any
    tables: dict[str, str]
    identity_map: Path
    identity_server: EmbeddedServer
    resolver: IdentityResolver
    node: str
    dynamodb_endpoint: str
    _lock: threading.Lock

    @property
    def config(self) -> Config:
        """A client config: identities from ``identity_server``, GraphQL on the simulator."""
        return dataclasses.replace(
            self.identity_server.config, graphql_url=self.url, realtime_url=self.realtime_url
        )

    def logins(self, user: str) -> dict[str, str]:
        """``logins`` of developer-authenticated ``user`` (one identity per user name)."""
        key = self.identity_server.admin_credentials
        return developer_login(self.config, key.access_key_id, key.secret_access_key, user)

    @property
    def host(self) -> str:
        """host:port of the GraphQL endpoint (what SigV4 signs)."""
        return self.url.split("/")[2]

    def identity(self, identity_id: str | None = None) -> tuple[str, str]:
        """Register a new access key for ``identity_id`` (new if None): (access key, id)."""
        identity_id = identity_id or f"{REGION}:{uuid.uuid4()}"
        access_key = "ASIA" + uuid.uuid4().hex[:16].upper()
        with self._lock:
            mapping = json.loads(self.identity_map.read_text())
            mapping[access_key] = identity_id
            temp = self.identity_map.with_suffix(".tmp")
            temp.write_text(json.dumps(mapping))
            temp.replace(self.identity_map)
        return access_key, identity_id

    def client(self, access_key: str) -> Client:
        """A gql client signing with ``access_key`` (AppSync IAM auth, unmodified)."""
        auth = AppSyncIAMAuthentication(
            host=self.host,
            region_name=REGION,
            credentials=Credentials(access_key, "not-checked-by-the-simulator"),
        )
        transport = AIOHTTPTransport(url=self.url, auth=auth, ssl=False)
        return Client(transport=transport, fetch_schema_from_transport=False)

    def empty_tables(self) -> None:
        """Drop and recreate the tables (moto copies a whole table in every transaction).

        Tables that are gone are just created: moto's in-process `mock_aws` (the stack
        tests) resets the state this server shares when it stops.
        """
        existing = set(self.dynamodb.list_tables()["TableNames"])
        for name in self.tables.values():
            if name in existing:
                self.dynamodb.delete_table(TableName=name)
        create_tables(self.dynamodb)

    def table_items(self, pk: str) -> list[dict[str, Any]]:
        """Every item of one partition of the table (for white-box checks)."""
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {
            "TableName": self.tables["Table"],
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
        }
        while True:
            page = self.dynamodb.query(**params)
            items.extend(page["Items"])
            if "LastEvaluatedKey" not in page:
                return items
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@pytest.fixture(autouse=True)
def _empty_tables(request: pytest.FixtureRequest) -> None:
    """Every simulator test starts on empty tables.

    Tests use fresh identities and need no emptiness; but moto deep-copies a table once per
    item of every TransactWriteItems (its rollback copy), so a push costs time in proportion
    to everything the session wrote before. Emptying keeps every push as cheap as the first.
    """
    if "aws_backend" in request.fixturenames:
        backend: SimulatorBackend = request.getfixturevalue("aws_backend")
        backend.empty_tables()


def _ensure_node_modules() -> None:
    if (SIMULATOR_DIR / "node_modules" / "@aws-amplify" / "amplify-appsync-simulator").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("server_schema/simulator needs `npm ci` but npm is not installed")
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"], cwd=SIMULATOR_DIR, check=True, timeout=900
    )


def _read_banner(process: subprocess.Popen[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}

    def read() -> None:
        assert process.stdout is not None
        line = process.stdout.readline()
        if line:
            result.update(json.loads(line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(_START_TIMEOUT)
    if not result:
        process.kill()
        _, err = process.communicate(timeout=10)
        raise RuntimeError(f"the AppSync simulator did not start:\n{err}")
    return result


@contextlib.contextmanager
def _simulator(
    node: str,
    dynamodb_endpoint: str,
    identity_map: Path,
    resolver_url: str,
    extra: Sequence[str] = (),
) -> Iterator[dict[str, Any]]:
    """The launcher running as a child process (``extra``: more options); yields its banner."""
    env = dict(os.environ, AWS_ACCESS_KEY_ID="cogsync-test", AWS_SECRET_ACCESS_KEY="cogsync-test")
    env["AWS_DEFAULT_REGION"] = REGION
    process = subprocess.Popen(
        [
            node,
            str(SIMULATOR_DIR / "launch.js"),
            "--template",
            str(SCHEMA_DIR / "template.yaml"),
            "--dynamodb-endpoint",
            dynamodb_endpoint,
            "--identity-map",
            str(identity_map),
            "--identity-resolver",
            resolver_url,
            "--region",
            REGION,
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        banner = _read_banner(process)
        # Drain the pipes so that a chatty simulator never blocks on a full pipe.
        for pipe in (process.stdout, process.stderr):
            threading.Thread(target=pipe.read, daemon=True).start()  # type: ignore[union-attr]
        yield banner
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture(scope="session")
def aws_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorBackend]:
    """moto (DynamoDB), a `cogsync serve` for identities, and the AppSync simulator running
    server_schema/, for the session."""
    node = shutil.which("node")
    if node is None:
        reason = "node is not installed: the AppSync simulator tests of tests/aws need Node 20+"
        print(reason)
        pytest.skip(reason)
    _ensure_node_modules()
    with contextlib.ExitStack() as stack:
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        moto.start()
        stack.callback(moto.stop)
        host, port = moto.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        dynamodb = boto3.client(
            "dynamodb",
            region_name=REGION,
            endpoint_url=endpoint,
            aws_access_key_id="cogsync-test",
            aws_secret_access_key="cogsync-test",
        )
        tables = create_tables(dynamodb)
        identity_map = tmp_path_factory.mktemp("simulator") / "identities.json"
        identity_map.write_text("{}")
        identity_server = stack.enter_context(
            EmbeddedServer(tmp_path_factory.mktemp("identities"), port=0)
        )
        resolver = stack.enter_context(IdentityResolver(identity_server.identity_db))
        banner = stack.enter_context(_simulator(node, endpoint, identity_map, resolver.url))
        yield SimulatorBackend(
            url=banner["url"],
            realtime_url=banner["realtimeUrl"],
            dynamodb=dynamodb,
            tables=tables,
            identity_map=identity_map,
            identity_server=identity_server,
            resolver=resolver,
            node=node,
            dynamodb_endpoint=endpoint,
            _lock=threading.Lock(),
        )


@pytest.fixture(scope="session")
def sync_trigger_lambda() -> Iterator[LambdaEndpoint]:
    """The sync trigger's Lambda, run locally: `tests.moving.operator_trigger`'s handler
    (the one `cogsync serve --sync-trigger` runs in tests/moving) unless a test swaps it."""
    with LambdaEndpoint(operator_trigger) as endpoint:
        yield endpoint


@pytest.fixture
def trigger_lambda(sync_trigger_lambda: LambdaEndpoint) -> Iterator[LambdaEndpoint]:
    """`sync_trigger_lambda` with no invocations yet, its handler restored after the test."""
    sync_trigger_lambda.invocations.clear()
    yield sync_trigger_lambda
    sync_trigger_lambda.handler = operator_trigger


@pytest.fixture(scope="session")
def aws_trigger_backend(
    aws_backend: SimulatorBackend, sync_trigger_lambda: LambdaEndpoint
) -> Iterator[SimulatorBackend]:
    """A second simulator running template.yaml with ``SyncTriggerFunctionArn`` set, its
    Lambda data source invoking `sync_trigger_lambda`; same DynamoDB and identities."""
    options = (
        *("--parameter", f"SyncTriggerFunctionArn={SYNC_TRIGGER_ARN}"),
        *("--lambda-endpoint", sync_trigger_lambda.url),
    )
    with _simulator(
        aws_backend.node,
        aws_backend.dynamodb_endpoint,
        aws_backend.identity_map,
        aws_backend.resolver.url,
        options,
    ) as banner:
        yield dataclasses.replace(
            aws_backend, url=banner["url"], realtime_url=banner["realtimeUrl"]
        )
