"""A `server_schema` stack in moto server for `cogsync migrate --to-stack`, and a reader of
its table that follows the VTL resolvers (queryRecords + fetchChunks) independently of
`cogsync.migrate.dynamodb`."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer
from moto.server import ThreadedMotoServer

from tests.aws.conftest import create_tables

REGION = "us-east-1"
_DESERIALIZE = TypeDeserializer().deserialize


def plain(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as JSON-like Python values (numbers as int)."""
    decoded = {k: _DESERIALIZE(v) for k, v in item.items()}
    return json.loads(json.dumps(decoded, default=int))  # type: ignore[no-any-return]


@contextmanager
def moto_server() -> Iterator[str]:
    """moto server on 127.0.0.1; yields its endpoint URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def point_boto_at(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """Send CloudFormation, DynamoDB and AppSync calls of boto3 to ``endpoint``."""
    for service in ("CLOUDFORMATION", "DYNAMODB", "APPSYNC"):
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", endpoint)


SOURCE_POOL = "us-east-1:00000000-0000-4000-8000-000000000001"
"""The fake Cognito's default pool id: the stack keeps it, as ExistingIdentityPoolId does."""


def deploy(
    endpoint: str,
    *,
    table: str | None = None,
    output: bool = True,
    api_id: str | None = None,
    pool_id: str | None = SOURCE_POOL,
) -> tuple[str, str]:
    """Create the template's table (named ``table``) and a stack naming it; (stack, table).

    The stack's ``IdentityPoolId`` output is ``pool_id`` (none if None).
    """
    session = boto3.session.Session(
        region_name=REGION, aws_access_key_id="moto", aws_secret_access_key="moto"
    )
    dynamodb = session.client("dynamodb", endpoint_url=endpoint)
    prefix = f"cogsync{uuid.uuid4().hex[:8]}"
    names = create_tables(dynamodb, prefix) if table is None else {"Table": table}
    stack = f"stack-{uuid.uuid4().hex[:8]}"
    template: dict[str, Any] = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"Region": {"Value": REGION}},
    }
    if output:
        template["Outputs"]["TableName"] = {"Value": names["Table"]}
    if api_id:
        template["Outputs"]["ApiId"] = {"Value": api_id}
    if pool_id:
        template["Outputs"]["IdentityPoolId"] = {"Value": pool_id}
    cloudformation = session.client("cloudformation", endpoint_url=endpoint)
    cloudformation.create_stack(StackName=stack, TemplateBody=json.dumps(template))
    return stack, names["Table"]


class TableReader:
    """Reads the table the way the resolvers do (white-box checks of the layout)."""

    def __init__(self, endpoint: str, table: str) -> None:
        self.table = table
        self.client: Any = boto3.client(
            "dynamodb",
            region_name=REGION,
            endpoint_url=endpoint,
            aws_access_key_id="moto",
            aws_secret_access_key="moto",
        )

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        item = self.client.get_item(
            TableName=self.table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
        ).get("Item")
        return plain(item) if item else None

    def partition(self, pk: str) -> list[dict[str, Any]]:
        params: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
        }
        items: list[dict[str, Any]] = []
        while True:
            page = self.client.query(**params)
            items += [plain(i) for i in page["Items"]]
            if "LastEvaluatedKey" not in page:
                return items
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def scan(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"TableName": self.table}
        while True:
            page = self.client.scan(**params)
            items += [plain(i) for i in page["Items"]]
            if "LastEvaluatedKey" not in page:
                return sorted(items, key=lambda i: (i["pk"], i["sk"]))
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def pull(self, identity_id: str, name: str, last: int = 0) -> dict[str, Any]:
        """listRecords from ``last``: the dataset item, then records the index says are current."""
        ds = self.get(f"d#{identity_id}", name)
        if ds is None:
            return {"syncCount": 0, "records": [], "deleted": False, "merged": []}
        pk = f"r#{identity_id}#{name}"
        chunks = {i["sk"]: i["v"] for i in self.partition(pk) if i["sk"].startswith("c#")}
        segments = sorted(
            (i for i in self.partition(pk) if i["sk"].startswith("s#")), key=lambda i: i["sk"]
        )
        records = []
        for item in segments:
            if not last < item["c"] <= ds["syncCount"]:
                continue
            for r in item["recs"]:
                entry = ds["idx"].get(r["k"])
                if entry is None or entry[0] != r["c"] or entry[1] != r["i"]:
                    continue
                value = r.get("v")
                if r["x"]:
                    keys = [f"c#{r['c']:010d}#{r['i']:04d}#{q:02d}" for q in range(r["x"])]
                    value = base64.b64decode("".join(chunks[k] for k in keys)).decode()
                records.append({**r, "v": value})
        return {
            "syncCount": ds["syncCount"],
            "deleted": ds["deleted"],
            "merged": ds["mergedDatasetNames"],
            "records": records,
            "item": ds,
        }
