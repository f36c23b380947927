"""`Projection`: a subscription's selection, resolved once, applied to each published event.

graphql-core executes a subscription's selection set again for every event, and its
per-subscription executor memoizes the fields it collects per event, so every delivered
event stayed in memory until the subscription ended. A subscription's selection never
changes, so it is resolved once when the subscription starts (aliases, fragments,
``__typename``, ``@skip`` / ``@include``: `cogsync.server.completion`) and each event is
projected through it: the same response keys in the same order, leaf values through the
schema's own scalar serializers. The data is the data graphql-core answers, and nothing is
kept per event.

Events are what `SyncService.publish` builds: plain dicts keyed by field name. An event
the projection cannot answer the way graphql-core would (a null in a non-null field, a
value a serializer refuses) and a selection it does not cover (a field with its own
resolver, an abstract type, a list of lists) are executed by graphql-core itself, with a
fresh executor each time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FragmentDefinitionNode,
    GraphQLSchema,
    execute,
    get_operation_ast,
)

from cogsync._callbacks import maybe_await
from cogsync.server.completion import Collector, Convert, Declined, object_output

__all__ = ["ProjectedEvents", "Projection"]


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
        self._complete: Convert | None = None
        operation = get_operation_ast(document, operation_name)
        root = schema.subscription_type
        if operation is None or root is None:
            return
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        collector = Collector(fragments, operation, variables)
        try:
            self._complete = object_output(root, [operation.selection_set], collector)
        except Declined:
            self._complete = None  # graphql-core executes every event

    @property
    def resolved(self) -> bool:
        """Whether events are projected (False: graphql-core executes each)."""
        return self._complete is not None

    async def result(self, event: Any) -> ExecutionResult:
        """The execution result of ``event``, as graphql-core would build it."""
        if self._complete is not None:
            try:
                return ExecutionResult(self._complete(event), None)
            except Declined:
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
