"""`Config`: where a client finds its identity pool and GraphQL endpoints (``cogsync.json``).

``cogsync.json`` is validated by a pydantic model (`_ConfigFile`, strict: no coercion) and
its errors become the one-line `ConfigError`s below.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from cogsync.exceptions import ConfigError

__all__ = ["Config"]

_REQUIRED = ("region", "identity_pool_id", "graphql_url", "realtime_url")

_Text = Annotated[str, StringConstraints(min_length=1)]


class _ConfigFile(BaseModel):
    """The keys of ``cogsync.json`` (others are ignored, for newer writers)."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    region: _Text
    identity_pool_id: _Text
    graphql_url: _Text
    realtime_url: _Text
    identity_endpoint: str | None = None


@dataclass(frozen=True, slots=True)
class Config:
    """Client configuration.

    Attributes:
        region: AWS region of the identity pool (e.g. ``us-east-1``).
        identity_pool_id: the Cognito identity pool id (``region:uuid``).
        graphql_url: HTTP GraphQL endpoint (``https://.../graphql``).
        realtime_url: real-time WebSocket endpoint (``wss://.../graphql``, or
            ``.../graphql/realtime`` for `cogsync serve`).
        identity_endpoint: Cognito Identity endpoint URL; None means AWS's regional endpoint.
    """

    region: str
    identity_pool_id: str
    graphql_url: str
    realtime_url: str
    identity_endpoint: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Build a config from a mapping with the keys of ``cogsync.json``."""
        if not isinstance(data, dict):
            raise ConfigError("a cogsync config must be a JSON object")
        try:
            valid = _ConfigFile.model_validate(data)
        except ValidationError as exc:
            wrong = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
            missing = [k for k in _REQUIRED if k in wrong]
            if missing:
                raise ConfigError(
                    f"cogsync config lacks {', '.join(missing)}: run `cogsync serve` or "
                    "`cogsync config from-stack STACK` to write one"
                ) from None
            raise ConfigError("identity_endpoint must be a URL string or null") from None
        return cls(**valid.model_dump())

    @classmethod
    def load(cls, path: str | Path) -> Config:
        """Read ``cogsync.json`` from ``path``."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read cogsync config {path}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"cogsync config {path} is not UTF-8 JSON text") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"cogsync config {path} is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """The config as the JSON object of ``cogsync.json``."""
        return asdict(self)

    def dump(self, path: str | Path) -> None:
        """Write this config to ``path`` as JSON."""
        try:
            Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write cogsync config {path}: {exc.strerror}") from exc
