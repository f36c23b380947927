"""Callbacks that may be plain functions or coroutine functions."""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["maybe_await"]


async def maybe_await(value: Any) -> Any:
    """``value``, awaited first if it is awaitable (callbacks may be sync or async)."""
    return await value if inspect.isawaitable(value) else value
