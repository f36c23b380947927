"""Bounds on one GraphQL request before and while it executes.

* `parse_bounded` parses a document with the token bound of `ServerLimits` (graphql-core
  stops reading past it), then `check_document` walks the operations with fragments
  expanded and refuses one that selects too many fields or aliases, or nests too deeply,
  before it is validated or executed. The walk stops at the first bound it passes, so its
  own cost is bounded too, however the fragments multiply.
* `ResponseBudget` counts the bytes the resolvers put into one answer and refuses the
  request as soon as they pass ``max_response_bytes``, so an answer past the bound is never
  built; `check_answer_size` checks the encoded answer itself.

Every refusal is a `RequestRefused` (``BadRequestException``) saying which bound was met.
"""

from __future__ import annotations

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionNode,
    parse,
)

from cogsync.server.bounds import ServerLimits
from cogsync.server.wire import RequestRefused

__all__ = [
    "ResponseBudget",
    "answer_too_large",
    "check_answer_size",
    "check_document",
    "parse_bounded",
    "syntax_refusal",
]


def _refuse(message: str) -> RequestRefused:
    return RequestRefused("BadRequestException", message, 400)


def parse_bounded(query: str, limits: ServerLimits) -> DocumentNode:
    """Parse ``query``, reading at most ``limits.max_query_tokens`` tokens.

    Raises:
        GraphQLError: a syntax error, or more tokens than the bound (graphql-core's message).
    """
    return parse(query, no_location=False, max_tokens=limits.max_query_tokens)


class _Walk:
    """Counts of one operation's selections, fragments expanded; raises past a bound."""

    def __init__(self, document: DocumentNode, limits: ServerLimits) -> None:
        self.limits = limits
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.selections = 0
        self.aliases = 0
        self.names: set[str] = set()

    def operation(self, operation: OperationDefinitionNode) -> None:
        # (selection, depth, fragments spread on the way to it); depth-first, iterative
        stack: list[tuple[SelectionNode, int, frozenset[str]]] = [
            (s, 1, frozenset()) for s in reversed(operation.selection_set.selections)
        ]
        while stack:
            node, depth, spread = stack.pop()
            self._count(node, depth)
            children: tuple[SelectionNode, ...] = ()
            child_depth = depth
            if isinstance(node, FieldNode):
                children = tuple(node.selection_set.selections) if node.selection_set else ()
                child_depth = depth + 1
            elif isinstance(node, InlineFragmentNode):
                children = tuple(node.selection_set.selections)
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in spread:
                    continue  # unknown fragments and cycles are validation errors
                children = tuple(fragment.selection_set.selections)
                spread = spread | {name}
            stack.extend((c, child_depth, spread) for c in reversed(children))

    def _count(self, node: SelectionNode, depth: int) -> None:
        limits = self.limits
        self.selections += 1
        if self.selections > limits.max_query_fields:
            raise _refuse(
                f"the operation selects more than {limits.max_query_fields} fields (fragments "
                "expanded): split it into smaller requests"
            )
        if depth > limits.max_query_depth:
            raise _refuse(
                f"the operation nests selections deeper than {limits.max_query_depth} levels"
            )
        if not isinstance(node, FieldNode):
            return
        self.names.add(node.name.value)
        if node.alias is not None:
            self.aliases += 1
            if self.aliases > limits.max_query_aliases:
                raise _refuse(
                    f"the operation has more than {limits.max_query_aliases} aliased fields: "
                    "split it into smaller requests"
                )


def check_document(document: DocumentNode, limits: ServerLimits) -> frozenset[str]:
    """Refuse a document whose operations pass the field, alias or depth bounds.

    Each operation is counted on its own (fragments expanded into it); a document's
    unused operations count too, as they are validated. Returns the names of the fields
    the document selects (what `ResponseBudget` may count).

    Raises:
        RequestRefused: ``BadRequestException`` naming the bound that was passed.
    """
    names: set[str] = set()
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            walk = _Walk(document, limits)
            walk.operation(definition)
            names |= walk.names
    return frozenset(names)


def syntax_refusal(error: GraphQLError) -> RequestRefused:
    """The refusal of a document that does not parse (or has too many tokens)."""
    return _refuse(f"invalid GraphQL syntax: {error.message}")


class ResponseBudget:
    """The bytes one answer may still take; resolvers `charge` what they add.

    A charge is a lower estimate of the encoded size (the lengths of the selected text
    fields), so the budget never refuses an answer that would fit; `check_answer_size`
    checks the exact encoding.

    Args:
        limit: the bound in bytes.
        selected: the field names the document selects (from `check_document`).
    """

    def __init__(self, limit: int, selected: frozenset[str] = frozenset()) -> None:
        self.limit, self.selected = limit, selected
        self.used = 0

    @property
    def exceeded(self) -> bool:
        """Whether the charges passed the bound."""
        return self.used > self.limit

    def text_size(self, fields: dict[str, str | None]) -> int:
        """The characters of the selected ones of ``fields`` (name -> text), plus one."""
        return 1 + sum(len(v) for k, v in fields.items() if v is not None and k in self.selected)

    def check(self) -> None:
        """Refuse if earlier charges already passed the bound (call before expensive work)."""
        if self.exceeded:
            raise answer_too_large(self.limit)

    def charge(self, size: int) -> None:
        """Add ``size`` bytes to the answer; refuse once the bound is passed."""
        self.used += size
        self.check()


def answer_too_large(limit: int) -> RequestRefused:
    """The refusal of an answer larger than ``limit`` bytes."""
    return _refuse(
        f"the answer would be larger than {limit} bytes: select fewer fields or aliases, "
        "or page with a smaller 'limit'"
    )


def check_answer_size(size: int, limit: int) -> None:
    """Refuse an encoded answer of ``size`` bytes past ``limit``."""
    if size > limit:
        raise answer_too_large(limit)
