"""The GraphQL documents of `cogsync.remote.operations` against the wire contract."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import OperationDefinitionNode, parse, validate

from cogsync.remote import operations
from cogsync.server.schema import load_schema

DOCUMENTS = {name: getattr(operations, name) for name in operations.__all__}


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_document_is_valid_against_the_schema(name: str) -> None:
    errors = validate(load_schema(), parse(DOCUMENTS[name]))
    assert errors == []


def _fields(selection_set: Any) -> dict[str, Any]:
    return {node.name.value: node.selection_set for node in selection_set.selections}


def _root(document: str) -> dict[str, Any]:
    definition = parse(document).definitions[0]
    assert isinstance(definition, OperationDefinitionNode)
    (root,) = _fields(definition.selection_set).values()
    return _fields(root)


def test_mutations_select_every_field_the_subscription_needs() -> None:
    # AppSync builds subscription data from the mutation's selection set.
    wanted = set(_root(operations.ON_DATASET_CHANGED))
    assert wanted == {"identityId", "datasetName", "syncCount", "deleted"}
    assert wanted <= set(_root(operations.PUSH_RECORDS))
    assert wanted <= set(_root(operations.DELETE_DATASET))


def test_push_answers_carry_record_metadata_but_no_values() -> None:
    records = _fields(_root(operations.PUSH_RECORDS)["records"])
    assert set(records) == {
        "key",
        "syncCount",
        "lastModifiedDate",
        "lastModifiedBy",
        "deviceLastModifiedDate",
    }
    pulled = _fields(_root(operations.LIST_RECORDS)["records"])
    assert "value" in pulled
