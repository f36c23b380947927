"""`DocumentCache`: each GraphQL document is parsed, bounded and validated once.

Clients send the same few documents over and over, so the outcome of checking a document
(`cogsync.server.querylimits` bounds, then graphql-core's validation) is kept by its exact
text: the parsed document with the field names it selects and, for one of the client's
own documents, its `CompiledOperation`; or the error entries it was refused with. The
check is deterministic, so a remembered outcome is the one a new check would give.

The cache is bounded: at most ``size`` documents (least recently used dropped first), and
only documents of at most ``max_text`` characters are kept, so it holds little memory
whatever clients send. It is thread-safe (checks run on worker threads).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from graphql import DocumentNode, GraphQLError, GraphQLSchema, validate

from cogsync.server.answers import format_error
from cogsync.server.bounds import ServerLimits
from cogsync.server.compiled import CompiledOperation, compile_operation
from cogsync.server.querylimits import check_document, parse_bounded, syntax_refusal
from cogsync.server.wire import RequestRefused, graphql_error

__all__ = ["CheckedDocument", "DocumentCache", "Outcome"]


@dataclass(frozen=True, slots=True)
class CheckedDocument:
    """A document that passed the bounds and validation.

    Attributes:
        document: the parsed document.
        selected: the field names it selects (what a `ResponseBudget` counts).
        compiled: its compiled operation if it is one of the client's documents.
    """

    document: DocumentNode
    selected: frozenset[str]
    compiled: CompiledOperation | None


Outcome = CheckedDocument | list[dict[str, Any]]
"""A checked document, or the AppSync error entries the document is refused with."""


class DocumentCache:
    """The outcome of checking each document text, remembered for the most recent ones.

    Args:
        schema: the schema documents are validated against.
        limits: the document bounds (``max_query_*``).
        size: how many documents are remembered.
        max_text: the longest document text remembered (longer ones are checked each time).
    """

    def __init__(
        self,
        schema: GraphQLSchema,
        limits: ServerLimits,
        *,
        size: int = 256,
        max_text: int = 16 * 1024,
    ) -> None:
        self.schema, self.limits, self.size, self.max_text = schema, limits, size, max_text
        self._outcomes: OrderedDict[str, Outcome] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._outcomes)

    def get(self, query: str) -> Outcome | None:
        """The remembered outcome of ``query``, or None if it has to be checked."""
        with self._lock:
            outcome = self._outcomes.get(query)
            if outcome is not None:
                self._outcomes.move_to_end(query)
            return outcome

    def check(self, query: object) -> Outcome:
        """The outcome of ``query``: remembered, or checked now (and remembered)."""
        if not isinstance(query, str):
            return [graphql_error("BadRequestException", "query must be a GraphQL document string")]
        outcome = self.get(query)
        if outcome is None:
            outcome = self._check(query)
            if len(query) <= self.max_text:
                with self._lock:
                    self._outcomes[query] = outcome
                    self._outcomes.move_to_end(query)
                    while len(self._outcomes) > self.size:
                        self._outcomes.popitem(last=False)
        return outcome

    def _check(self, query: str) -> Outcome:
        limits = self.limits
        try:
            document = parse_bounded(query, limits)
            selected = check_document(document, limits)
        except GraphQLError as exc:
            refusal = syntax_refusal(exc)
            return [graphql_error(refusal.error_type, refusal.message)]
        except RequestRefused as exc:
            return [graphql_error(exc.error_type, exc.message)]
        errors = validate(self.schema, document)
        if errors:
            return [format_error(e) for e in errors]
        return CheckedDocument(document, selected, compile_operation(document, self.schema))
