"""`AsyncClosing`: ``async with`` for every object that ends with ``await close()``."""

from __future__ import annotations

from typing import Self

__all__ = ["AsyncClosing"]


class AsyncClosing:
    """``async with obj:`` returns ``obj`` and awaits ``obj.close()`` on the way out."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Release what the object holds (subclasses define it)."""
        raise NotImplementedError
