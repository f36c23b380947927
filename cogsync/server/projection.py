"""`Projection`: a subscription's selection, resolved once, applied to each published event.

graphql-core executes a subscription's selection set again for every event, and its
per-subscription executor memoizes the fields it collects per event, so every delivered
event stayed in memory until the subscription ended. A subscription's selection never
changes, so it is resolved once when the subscription starts (aliases, fragments,
``__typename``, ``@skip`` / ``@include``) and each event is projected through it: the same
response keys in the same order, leaf values through the schema's own scalar serializers.
The data is the data graphql-core answers, and nothing is kept per event.

Events are what `SyncService.publish` builds: plain dicts keyed by field name. An event
the projection cannot answer the way graphql-core would (a null in a non-null field, a
value a serializer refuses) and a selection it does not cover (a field with its own
resolver, an abstract type, a list of lists) are executed by graphql-core itself, with a
fresh executor each time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    BooleanValueNode,
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    execute,
    get_named_type,
    get_operation_ast,
    is_leaf_type,
)

from cogsync._callbacks import maybe_await

__all__ = ["ProjectedEvents", "Projection"]


class _Unprojectable(Exception):
    """graphql-core would answer this event with an error: let it."""


@dataclass(frozen=True, slots=True)
class _Field:
    """One response key: what to read, and how to complete it."""

    key: str
    name: str
    non_null: bool
    typename: str | None = None  # ``__typename``: the constant answer
    leaf: Callable[[Any], Any] | None = None  # a scalar's or enum's serializer
    fields: tuple[_Field, ...] | None = None  # an object's selection
    many: bool = False  # a list of such values
    item_non_null: bool = False


def _serializer(named: Any) -> Callable[[Any], Any]:
    coerce = getattr(named, "coerce_output_value", None)
    return coerce if callable(coerce) else named.serialize  # type: ignore[no-any-return]


class _Builder:
    """Resolves a selection set against the schema, once."""

    def __init__(
        self,
        fragments: Mapping[str, FragmentDefinitionNode],
        operation: OperationDefinitionNode,
        variables: Mapping[str, Any],
    ) -> None:
        self._fragments = fragments
        self._variables = dict(variables)
        for definition in operation.variable_definitions or ():
            name = definition.variable.name.value
            default = definition.default_value
            if name not in self._variables and isinstance(default, BooleanValueNode):
                self._variables[name] = default.value

    def fields(self, parent: GraphQLObjectType, selection: SelectionSetNode) -> tuple[_Field, ...]:
        grouped: dict[str, list[FieldNode]] = {}
        self._collect(parent, selection, grouped, set())
        return tuple(self._field(parent, key, nodes) for key, nodes in grouped.items())

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
        raise _Unprojectable("a directive argument that is neither a literal nor a variable")

    def _field(self, parent: GraphQLObjectType, key: str, nodes: list[FieldNode]) -> _Field:
        name = nodes[0].name.value
        if name == "__typename":
            return _Field(key, name, True, typename=parent.name)
        definition = parent.fields.get(name)
        if definition is None or definition.resolve is not None:
            raise _Unprojectable(f"{parent.name}.{name} is not a plain field")
        kind: GraphQLOutputType = definition.type
        non_null = isinstance(kind, GraphQLNonNull)
        inner = kind.of_type if isinstance(kind, GraphQLNonNull) else kind
        many = isinstance(inner, GraphQLList)
        item_non_null = False
        if isinstance(inner, GraphQLList):
            item = inner.of_type
            item_non_null = isinstance(item, GraphQLNonNull)
            inner = item.of_type if isinstance(item, GraphQLNonNull) else item
            if isinstance(inner, GraphQLList):
                raise _Unprojectable("a list of lists")
        named = get_named_type(inner)
        if is_leaf_type(named):
            leaf = _serializer(named)
            return _Field(key, name, non_null, leaf=leaf, many=many, item_non_null=item_non_null)
        if not isinstance(named, GraphQLObjectType):
            raise _Unprojectable("an abstract type")
        selection = SelectionSetNode(
            selections=tuple(
                s for n in nodes if n.selection_set for s in n.selection_set.selections
            )
        )
        fields = self.fields(named, selection)
        return _Field(key, name, non_null, fields=fields, many=many, item_non_null=item_non_null)


def _complete(field: _Field, value: Any) -> Any:
    if value is None:
        if field.non_null:
            raise _Unprojectable(field.name)
        return None
    if not field.many:
        return _one(field, value)
    if isinstance(value, str | bytes | Mapping) or not hasattr(value, "__iter__"):
        raise _Unprojectable(field.name)
    items: list[Any] = []
    for item in value:
        if item is None:
            if field.item_non_null:
                raise _Unprojectable(field.name)
            items.append(None)
        else:
            items.append(_one(field, item))
    return items


def _one(field: _Field, value: Any) -> Any:
    if field.leaf is not None:
        try:
            serialized = field.leaf(value)
        except Exception as exc:
            raise _Unprojectable(field.name) from exc
        if serialized is None:
            raise _Unprojectable(field.name)
        return serialized
    assert field.fields is not None
    return _object(field.fields, value)


def _object(fields: tuple[_Field, ...], value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _Unprojectable("an object that is not a mapping")
    result: dict[str, Any] = {}
    for field in fields:
        if field.typename is not None:
            result[field.key] = field.typename
        else:
            result[field.key] = _complete(field, value.get(field.name))
    return result


class Projection:
    """The fixed selection of one subscription operation, to apply to its events.

    Args:
        schema: the executable schema.
        document: the validated subscription document.
        variables: the operation's variables (as sent).
        operation_name: which operation of ``document``.
    """

    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        variables: Mapping[str, Any] | None,
        operation_name: str | None,
    ) -> None:
        self._schema, self._document = schema, document
        self._variables, self._operation_name = variables, operation_name
        self._fields: tuple[_Field, ...] | None = None
        operation = get_operation_ast(document, operation_name)
        root = schema.subscription_type
        if operation is None or root is None:
            return
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        try:
            builder = _Builder(fragments, operation, variables or {})
            self._fields = builder.fields(root, operation.selection_set)
        except _Unprojectable:
            self._fields = None  # graphql-core executes every event

    @property
    def resolved(self) -> bool:
        """Whether events are projected (False: graphql-core executes each)."""
        return self._fields is not None

    async def result(self, event: Any) -> ExecutionResult:
        """The execution result of ``event``, as graphql-core would build it."""
        if self._fields is not None:
            try:
                return ExecutionResult(_object(self._fields, event), None)
            except _Unprojectable:
                pass
        executed = execute(
            self._schema,
            self._document,
            root_value=event,
            variable_values=dict(self._variables) if self._variables is not None else None,
            operation_name=self._operation_name,
        )
        result: ExecutionResult = await maybe_await(executed)
        return result


class ProjectedEvents:
    """The response stream of a subscription: each source event through a `Projection`.

    Closing it closes the source.

    Args:
        source: the subscription's source event stream.
        projection: the subscription's selection.
    """

    def __init__(self, source: AsyncIterator[Any], projection: Projection) -> None:
        self._source, self._projection = source, projection

    def __aiter__(self) -> ProjectedEvents:
        return self

    async def __anext__(self) -> ExecutionResult:
        return await self._projection.result(await self._source.__anext__())

    async def aclose(self) -> None:
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            await aclose()
