"""Compiled operations: the client's own documents answered without graphql-core's executor.

The cogsync client sends a handful of documents (`cogsync.remote.operations`) over and
over; graphql-core spends most of a big request's time coercing its variables and
completing its answer field by field. For those documents only, `compile_operation`
builds a `CompiledOperation` from the parsed document and the schema: a direct check of
the variables and a direct completion of the resolver's value, giving the same answer
graphql-core gives, to the byte. Every other document goes through graphql-core.

Rules:

* A document is compiled only if it is, token for token, one of the client's documents
  (any formatting of it: the client strips ignored characters before sending).
* Strict, never lenient: `CompiledOperation.arguments` accepts only variables that
  graphql-core would coerce to the very same values (exact JSON types, 32-bit ints, known
  enum names, no missing required fields) and returns None for anything else, which then
  goes through graphql-core for its exact error. `CompiledOperation.complete` likewise
  returns None for a value it cannot vouch for, which graphql-core then completes.
* A resolver's error becomes the result graphql-core gives for it (`failure`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    Undefined,
    VariableNode,
    is_input_type,
    located_error,
    parse,
    print_ast,
    type_from_ast,
)

from cogsync.remote.operations import LIST_DATASETS, LIST_RECORDS, PUSH_RECORDS
from cogsync.server.completion import (
    MAX_INT,
    MIN_INT,
    Collector,
    Convert,
    Declined,
    decline,
    output,
)

__all__ = ["CLIENT_DOCUMENTS", "CompiledOperation", "compile_operation"]

CLIENT_DOCUMENTS = (LIST_RECORDS, PUSH_RECORDS, LIST_DATASETS)
"""The documents that are compiled (in any formatting)."""


@cache
def _client_shapes() -> frozenset[str]:
    return frozenset(print_ast(parse(text)) for text in CLIENT_DOCUMENTS)


# -- variables -------------------------------------------------------------------------


_EXACT = {"String": str, "ID": str, "Int": int, "Boolean": bool}


def _exact_input(exact: type, non_null: bool) -> Convert:
    """A String, ID, Int or Boolean: exactly that JSON type (None if nullable), as is."""
    if exact is int and non_null:
        return lambda v: v if type(v) is int and MIN_INT <= v <= MAX_INT else decline()
    if exact is int:
        return lambda v: (
            v if v is None or (type(v) is int and MIN_INT <= v <= MAX_INT) else decline()
        )
    if non_null:
        return lambda value: value if type(value) is exact else decline()
    return lambda value: value if value is None or type(value) is exact else decline()


def _input(type_: GraphQLInputType) -> Convert:
    """The strict coercion of a value of ``type_``, None included."""
    non_null = isinstance(type_, GraphQLNonNull)
    nullable = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
    exact = _EXACT.get(nullable.name) if isinstance(nullable, GraphQLScalarType) else None
    if exact is not None:
        return _exact_input(exact, non_null)
    convert = _nullable_input(nullable)
    if non_null:
        return lambda value: decline() if value is None else convert(value)
    return lambda value: None if value is None else convert(value)


def _nullable_input(type_: GraphQLInputType) -> Convert:
    if isinstance(type_, GraphQLList):
        item = _input(type_.of_type)

        def items(value: Any) -> Any:
            if type(value) is not list:  # graphql-core would wrap a lone value: let it
                raise Declined
            return [item(v) for v in value]

        return items
    if isinstance(type_, GraphQLInputObjectType):
        return _input_object(type_)
    if isinstance(type_, GraphQLEnumType):
        names = {name: type_.coerce_input_value(name) for name in type_.values}
        return lambda value: names[value] if type(value) is str and value in names else decline()
    assert isinstance(type_, GraphQLScalarType)
    coerce = type_.coerce_input_value

    def scalar(value: Any) -> Any:
        try:
            result = coerce(value)
        except Exception as exc:
            raise Declined from exc
        if result is Undefined:
            raise Declined
        return result

    return scalar


def _input_object(type_: GraphQLInputObjectType) -> Convert:
    if type_.is_one_of or type_.out_type is not GraphQLInputObjectType.out_type:
        raise Declined
    fields = {}
    for name, field in type_.fields.items():
        if field.default_value is not Undefined:
            raise Declined  # not in the client's documents: keep graphql-core's rules
        fields[name] = (field.out_name or name, _input(field.type))
    required = {n for n, f in type_.fields.items() if isinstance(f.type, GraphQLNonNull)}

    def input_object(value: Any) -> Any:
        if type(value) is not dict or not value.keys() >= required:
            raise Declined
        coerced = {}
        for name, field_value in value.items():
            field = fields.get(name)
            if field is None:
                raise Declined
            coerced[field[0]] = field[1](field_value)
        return coerced

    return input_object


# -- operations ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompiledOperation:
    """One client document's operation: its root field, variables and completion.

    Attributes:
        field: the root field's name (the resolver to call).
        node: the root field's node (for error locations).
        operation_name: the operation's name, if it has one.
    """

    field: str
    node: FieldNode
    operation_name: str | None
    _variables: tuple[tuple[str, str, bool, Convert], ...]
    _key: str
    _non_null: bool
    _complete: Convert

    def arguments(
        self, variables: Mapping[str, Any] | None, operation_name: object
    ) -> dict[str, Any] | None:
        """The resolver's keyword arguments, or None: let graphql-core coerce ``variables``."""
        if operation_name is not None and operation_name != self.operation_name:
            return None
        given = variables or {}
        arguments: dict[str, Any] = {}
        try:
            for variable, argument, required, convert in self._variables:
                if variable in given:
                    arguments[argument] = convert(given[variable])
                elif required:
                    return None
        except Declined:
            return None
        return arguments

    def complete(self, value: object) -> ExecutionResult | None:
        """The result of the resolver's ``value``, or None: let graphql-core complete it."""
        try:
            return ExecutionResult({self._key: self._complete(value)}, None)
        except Declined:
            return None

    def failure(self, error: Exception) -> ExecutionResult:
        """The result graphql-core gives when the resolver raised ``error``."""
        located = located_error(error, [self.node], [self._key])
        return ExecutionResult(None if self._non_null else {self._key: None}, [located])


def compile_operation(document: DocumentNode, schema: GraphQLSchema) -> CompiledOperation | None:
    """The compiled operation of one of the client's documents; None for any other."""
    if print_ast(document) not in _client_shapes():
        return None
    try:
        return _compile(document, schema)
    except Declined:
        return None


def _compile(document: DocumentNode, schema: GraphQLSchema) -> CompiledOperation:
    (operation,) = document.definitions
    assert isinstance(operation, OperationDefinitionNode)
    root = schema.mutation_type if operation.operation is OperationType.MUTATION else None
    root = root or schema.query_type
    (node,) = operation.selection_set.selections
    assert isinstance(node, FieldNode) and root is not None
    if node.directives or operation.directives:
        raise Declined
    definition = root.fields[node.name.value]
    types = {}
    for variable in operation.variable_definitions or ():
        if variable.default_value is not None or variable.directives:
            raise Declined
        type_ = type_from_ast(schema, variable.type)
        if not is_input_type(type_):
            raise Declined
        types[variable.variable.name.value] = type_
    variables = []
    for argument in node.arguments or ():
        spec = definition.args[argument.name.value]
        if not isinstance(argument.value, VariableNode) or spec.default_value is not Undefined:
            raise Declined
        name = argument.value.name.value
        type_ = types[name]
        if str(type_) not in (str(spec.type), f"{spec.type}!"):
            raise Declined
        required = isinstance(type_, GraphQLNonNull) or isinstance(spec.type, GraphQLNonNull)
        out_name = spec.out_name or argument.name.value
        variables.append((name, out_name, required, _input(type_)))
    key = node.alias.value if node.alias else node.name.value
    return CompiledOperation(
        node.name.value,
        node,
        operation.name.value if operation.name else None,
        tuple(variables),
        key,
        isinstance(definition.type, GraphQLNonNull),
        output(definition.type, [node], Collector()),
    )
