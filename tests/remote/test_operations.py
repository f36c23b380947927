"""The GraphQL documents of `cogsync.remote.operations` against the wire contract."""

from __future__ import annotations

import pytest
from graphql import OperationDefinitionNode, parse, validate

from cogsync.remote import operations
from cogsync.server.schema import load_schema

DOCUMENTS = {name: getattr(operations, name) for name in operations.__all__}


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_document_is_valid_against_the_schema(name: str) -> None:
    errors = validate(load_schema(), parse(DOCUMENTS[name]))
    assert errors == []


def _selection(document: str) -> set[str]:
    definition = parse(document).definitions[0]
    assert isinstance(definition, OperationDefinitionNode)
    root = definition.selection_set.selections[0]
    assert root.selection_set is not None  # type: ignore[attr-defined]
    return {s.name.value for s in root.selection_set.selections}  # type: ignore[attr-defined]


def test_mutations_select_every_field_the_subscription_needs() -> None:
    # AppSync builds subscription data from the mutation's selection set.
    wanted = _selection(operations.ON_DATASET_CHANGED)
    assert wanted == {"identityId", "datasetName", "syncCount", "deleted"}
    assert wanted <= _selection(operations.PUSH_RECORDS)
    assert wanted <= _selection(operations.DELETE_DATASET)


def test_push_answers_carry_no_values() -> None:
    assert "value" not in operations.PUSH_RECORDS.replace("Value", "")
