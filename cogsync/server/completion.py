"""Completion: a resolved value through a selection set, answered as graphql-core answers it.

Two parts of the server answer without graphql-core's executor: the compiled path for the
client's own documents (`cogsync.server.compiled`) and the projection of subscription
events (`cogsync.server.projection`). Both build, once per selection, a converter from the
schema: `object_output` and `output` give the same response keys in the same order and
the leaf values through the schema's own serializers, or raise `Declined` for a value (or,
while building, a selection) they cannot vouch for, which graphql-core then answers.

`Collector` groups a selection set's fields by response key the way graphql-core does:
fragments and inline fragments on the object's own type, ``@skip`` / ``@include`` from
literals or the operation's variables, fields of one key merged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from graphql import (
    BooleanValueNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    Undefined,
    VariableNode,
)

__all__ = [
    "MAX_INT",
    "MIN_INT",
    "Collector",
    "Convert",
    "Declined",
    "decline",
    "object_output",
    "output",
]

Convert = Callable[[Any], Any]
"""Turns a value into its coerced or completed form, or raises `Declined`."""

MIN_INT, MAX_INT = -(2**31), 2**31 - 1
"""GraphQL's Int: 32 bits, signed."""


class Declined(Exception):
    """A value or selection the converters do not vouch for: graphql-core takes over."""


def decline(_value: object = None) -> Any:
    """Raise `Declined` (usable inside an expression)."""
    raise Declined


class Collector:
    """Groups selection sets by response key, as graphql-core collects fields.

    Args:
        fragments: the document's fragment definitions by name.
        operation: the operation (for its variables' boolean defaults).
        variables: the operation's variables as sent (for ``@skip`` / ``@include``).
    """

    def __init__(
        self,
        fragments: Mapping[str, FragmentDefinitionNode] | None = None,
        operation: OperationDefinitionNode | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> None:
        self._fragments = fragments or {}
        self._variables = dict(variables or {})
        for definition in operation.variable_definitions or () if operation else ():
            name = definition.variable.name.value
            default = definition.default_value
            if name not in self._variables and isinstance(default, BooleanValueNode):
                self._variables[name] = default.value

    def fields(
        self, parent: GraphQLObjectType, selections: Sequence[SelectionSetNode]
    ) -> dict[str, list[FieldNode]]:
        """Response key -> the field nodes answering it, in response order."""
        grouped: dict[str, list[FieldNode]] = {}
        for selection in selections:
            self._collect(parent, selection, grouped, set())
        return grouped

    def _collect(
        self,
        parent: GraphQLObjectType,
        selection: SelectionSetNode,
        grouped: dict[str, list[FieldNode]],
        visited: set[str],
    ) -> None:
        for node in selection.selections:
            if not self._included(node):
                continue
            if isinstance(node, FieldNode):
                key = node.alias.value if node.alias else node.name.value
                grouped.setdefault(key, []).append(node)
            elif isinstance(node, InlineFragmentNode):
                condition = node.type_condition
                if condition is None or condition.name.value == parent.name:
                    self._collect(parent, node.selection_set, grouped, visited)
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                fragment = self._fragments.get(name)
                if name in visited or fragment is None:
                    continue
                visited.add(name)
                if fragment.type_condition.name.value == parent.name:
                    self._collect(parent, fragment.selection_set, grouped, visited)

    def _included(self, node: Any) -> bool:
        for directive in node.directives or ():
            name = directive.name.value
            if name not in ("skip", "include"):
                continue
            flag = self._flag(directive.arguments[0].value)
            if (name == "skip") == flag:
                return False
        return True

    def _flag(self, value: Any) -> bool:
        if isinstance(value, VariableNode):
            return bool(self._variables.get(value.name.value))
        if isinstance(value, BooleanValueNode):
            return value.value
        raise Declined  # a directive argument that is neither a literal nor a variable


def output(type_: GraphQLOutputType, nodes: Sequence[FieldNode], collector: Collector) -> Convert:
    """The completion of a value of ``type_`` (None allowed unless non-null) for the field
    ``nodes`` (one response key's nodes; their selection sets are merged)."""
    non_null = isinstance(type_, GraphQLNonNull)
    nullable = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
    if isinstance(nullable, GraphQLScalarType | GraphQLEnumType):
        return _leaf_output(nullable, non_null)
    convert = _nullable_output(nullable, nodes, collector)
    if non_null:
        return lambda value: decline() if value is None else convert(value)
    return lambda value: None if value is None else convert(value)


def object_output(
    type_: GraphQLObjectType, selections: Sequence[SelectionSetNode], collector: Collector
) -> Convert:
    """The completion of an object (a mapping read by field name) of ``type_``."""
    fields: list[tuple[str, str, Convert]] = []
    for key, nodes in collector.fields(type_, selections).items():
        name = nodes[0].name.value
        if name == "__typename":
            fields.append((key, name, _constant(type_.name)))
            continue
        definition = type_.fields.get(name)
        if definition is None or definition.resolve is not None:
            raise Declined  # not a plain field: graphql-core runs its resolver
        fields.append((key, name, output(definition.type, nodes, collector)))

    def object_(value: Any) -> Any:
        if type(value) is not dict and not isinstance(value, Mapping):
            raise Declined
        get = value.get
        return {key: convert(get(name)) for key, name, convert in fields}

    return object_


def _constant(answer: str) -> Convert:
    return lambda _value: answer


def _nullable_output(
    type_: GraphQLOutputType, nodes: Sequence[FieldNode], collector: Collector
) -> Convert:
    if isinstance(type_, GraphQLList):
        inner = type_.of_type
        if isinstance(inner, GraphQLNonNull):
            inner = inner.of_type
        if isinstance(inner, GraphQLList):
            raise Declined  # a list of lists
        item = output(type_.of_type, nodes, collector)

        def items(value: Any) -> Any:
            if type(value) is not list and type(value) is not tuple and _not_a_list(value):
                raise Declined
            return [item(v) for v in value]

        return items
    if isinstance(type_, GraphQLObjectType):
        selections = [node.selection_set for node in nodes if node.selection_set]
        return object_output(type_, selections, collector)
    raise Declined  # an abstract type


def _not_a_list(value: object) -> bool:
    """Whether graphql-core would refuse ``value`` for a list (it takes any iterable but a
    string or a mapping)."""
    return isinstance(value, str | bytes | Mapping) or not hasattr(value, "__iter__")


def _leaf_output(type_: GraphQLScalarType | GraphQLEnumType, non_null: bool) -> Convert:
    serialize = type_.coerce_output_value

    def general(value: Any) -> Any:
        if value is None:
            if non_null:
                raise Declined
            return None
        if callable(value):  # graphql-core's default resolver would call it
            raise Declined
        try:
            result = serialize(value)
        except Exception as exc:
            raise Declined from exc
        if result is None or result is Undefined:
            raise Declined
        return result

    name = type_.name if isinstance(type_, GraphQLScalarType) else None
    if name in ("String", "ID"):  # the common cases first, exactly as graphql-core has them
        return lambda value: value if type(value) is str else general(value)
    if name == "Int":
        return lambda v: v if type(v) is int and MIN_INT <= v <= MAX_INT else general(v)
    if name == "Boolean":
        return lambda value: value if type(value) is bool else general(value)
    if name == "AWSDateTime":
        return _last_moment(general)
    return general


def _last_moment(complete: Convert) -> Convert:
    """``complete``, answering again at once for the datetime object it completed last.

    The records of a page share a few time stamps, read as the very same objects.
    """
    last: list[tuple[object, Any]] = [(None, None)]

    def moment(value: Any) -> Any:
        seen, result = last[0]
        if value is seen and value is not None:
            return result
        result = complete(value)
        if type(value) is datetime:
            last[0] = (value, result)
        return result

    return moment
