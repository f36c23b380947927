"""The settings of ``cogsync serve``: one pydantic-settings model, its flags and its sources.

Every setting comes, highest precedence first, from its flag (``--port``), its environment
variable (``COGSYNC_PORT``), the settings file (``--settings FILE``, TOML, key ``port``) or
its default. `SETTINGS` lists them; `add_flags` makes one flag per setting (defaults
suppressed, so only flags actually given take precedence) and `load_settings` merges the
sources into a `ServeSettings`, turning any invalid value into a one-line `ConfigError`
naming the setting. List settings (``oidc_issuer`` ...) take a JSON array in the
environment (``COGSYNC_OIDC_ISSUER='["https://..."]'``) and a TOML array in the file.
"""

from __future__ import annotations

import argparse
import json
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, ValidationError, create_model
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from cogsync.exceptions import ConfigError
from cogsync.server.app import COMPRESSION_MODES, Compression
from cogsync.server.bounds import LIMIT_HELP, ServerLimits
from cogsync.server.log_format import LOG_FORMATS, LOG_LEVELS
from cogsync.server.realtime_limits import REALTIME_HELP, RealtimeLimits

__all__ = [
    "ENV_PREFIX",
    "SETTINGS",
    "ServeSettings",
    "Setting",
    "add_flags",
    "load_settings",
    "render_settings",
]

ENV_PREFIX = "COGSYNC_"


class _BaseServeSettings(BaseSettings):
    """The settings that are not limits (the limits' fields are added by `create_model`)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    data: Path = Path("cogsync-data")
    config_out: Path = Path("cogsync.json")
    no_guests: bool = False
    developer_provider: str = Field("login.cogsync.dev", min_length=1)
    oidc_issuer: list[str] = []
    jwks_file: list[Path] = []
    oidc_client_id: list[str] = []
    allow_http_issuer: bool = False
    oidc_refresh_interval: float = Field(60.0, ge=0.0, allow_inf_nan=False)
    keepalive: float = Field(60.0, ge=1.0, allow_inf_nan=False)
    shutdown_timeout: float = Field(30.0, ge=0.0, allow_inf_nan=False)
    metrics_port: int | None = Field(None, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    log_format: Literal["text", "json"] = "text"
    compression: Compression = "auto"
    sync_trigger: str | None = None
    trust_identity_pool: list[str] = []
    trusted_pool_jwks: list[str] = []

    def server_limits(self) -> ServerLimits:
        """The `ServerLimits` of these settings (`ConfigError` if out of bounds)."""
        return ServerLimits(**{f.name: getattr(self, f.name) for f in fields(ServerLimits)})

    def realtime_limits(self) -> RealtimeLimits:
        """The `RealtimeLimits` of these settings (`ConfigError` if out of bounds)."""
        values = {f.name: getattr(self, f"realtime_{f.name}") for f in fields(RealtimeLimits)}
        return RealtimeLimits(**values)


def _limit_fields() -> dict[str, Any]:
    extra: dict[str, Any] = {}
    for spec in fields(ServerLimits):
        default = spec.default
        extra[spec.name] = (type(default), default)
    for spec in fields(RealtimeLimits):
        default = spec.default
        extra[f"realtime_{spec.name}"] = (type(default), default)
    return extra


ServeSettings: type[_BaseServeSettings] = create_model(
    "ServeSettings",
    __base__=_BaseServeSettings,
    __doc__="Every ``cogsync serve`` setting (see `SETTINGS`).",
    **_limit_fields(),
)


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: its field, flag, environment variable and help."""

    name: str
    help: str
    metavar: str | None = None
    repeatable: bool = False
    switch: bool = False
    choices: tuple[str, ...] | None = None

    @property
    def flag(self) -> str:
        """The ``cogsync serve`` flag."""
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        """The environment variable."""
        return ENV_PREFIX + self.name.upper()


_MAIN = (
    Setting("host", "interface to listen on", "HOST"),
    Setting("port", "TCP port (0 = any free port)", "PORT"),
    Setting("data", "data directory", "DIR"),
    Setting("config_out", "where to write the client config", "FILE"),
    Setting("no_guests", "refuse identities without logins", switch=True),
    Setting("developer_provider", "provider name of GetOpenIdTokenForDeveloperIdentity", "NAME"),
    Setting(
        "oidc_issuer",
        "accept ID tokens of this issuer (repeatable); alone: keys by OIDC discovery, "
        "else pair each with --jwks-file",
        "URL",
        repeatable=True,
    ),
    Setting("jwks_file", "JWKS file of the matching --oidc-issuer (offline)", "FILE", True),
    Setting("oidc_client_id", "accept only ID tokens issued to this app client id", "ID", True),
    Setting(
        "oidc_refresh_interval",
        "least seconds between key refetches of a discovered issuer on unknown key ids",
        "SECONDS",
    ),
    Setting(
        "allow_http_issuer",
        "allow http:// OIDC issuers (loopback issuers are always allowed)",
        switch=True,
    ),
    Setting("keepalive", "seconds between real-time ka messages", "SECONDS"),
    Setting(
        "shutdown_timeout",
        "seconds running requests may take to finish after SIGTERM",
        "SECONDS",
    ),
    Setting("metrics_port", "serve GET /metrics on this port, not the main one", "PORT"),
    Setting("log_level", "log threshold", choices=LOG_LEVELS),
    Setting("log_format", "log lines as text or JSON", choices=LOG_FORMATS),
    Setting(
        "compression",
        "gzip GraphQL answers above 1 KB for clients that accept it: always, never, or "
        "auto (not to loopback peers)",
        choices=COMPRESSION_MODES,
    ),
    Setting(
        "sync_trigger",
        "call FUNCTION(identity_id, dataset_name, patches) with every pushed batch "
        "(raise cogsync.server.hooks.SyncRejected to refuse)",
        "MODULE:FUNCTION",
    ),
    Setting(
        "trust_identity_pool",
        "accept that Cognito identity pool's OpenID tokens as proof of a migrated identity",
        "POOL_ID",
        True,
    ),
    Setting(
        "trusted_pool_jwks",
        "keys of each --trust-identity-pool's issuer, in order (default: Cognito's)",
        "FILE_OR_URL",
        True,
    ),
)

SETTINGS: tuple[Setting, ...] = (
    *_MAIN,
    *(Setting(f.name, LIMIT_HELP[f.name], "N") for f in fields(ServerLimits)),
    *(Setting(f"realtime_{f.name}", REALTIME_HELP[f.name], "N") for f in fields(RealtimeLimits)),
)
"""Every setting, in the order of ``cogsync serve --help`` and the docs' table."""


def _default(name: str) -> object:
    return ServeSettings.model_fields[name].default


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting, plus ``--settings`` and ``--print-settings``."""
    parser.add_argument("--settings", type=Path, metavar="FILE", help="TOML settings file")
    parser.add_argument(
        "--print-settings",
        action="store_true",
        help="print the effective settings (as TOML, secrets masked) and exit",
    )
    limits = parser.add_argument_group("limits (see docs/server-limits.md)")
    for setting in SETTINGS:
        target = parser if setting in _MAIN else limits
        default = _default(setting.name)
        known = "(default" in setting.help  # the realtime helps name theirs
        shown = f" (env {setting.env})" if known else f" (default {default}; env {setting.env})"
        common: dict[str, Any] = {"default": argparse.SUPPRESS, "help": setting.help + shown}
        if setting.switch:
            target.add_argument(setting.flag, action="store_true", **common)
        elif setting.repeatable:
            target.add_argument(setting.flag, action="append", metavar=setting.metavar, **common)
        elif setting.choices:
            target.add_argument(setting.flag, choices=setting.choices, **common)
        else:
            target.add_argument(setting.flag, metavar=setting.metavar, **common)


def _given(args: argparse.Namespace) -> dict[str, Any]:
    names = {s.name for s in SETTINGS}
    return {k: v for k, v in vars(args).items() if k in names}


def _error(exc: ValidationError, file: Path | None) -> ConfigError:
    error = exc.errors()[0]
    name = str(error["loc"][0]) if error["loc"] else "?"
    if error["type"] == "extra_forbidden":
        return ConfigError(f"unknown setting {name!r} in {file}")
    setting = next((s for s in SETTINGS if s.name == name), None)
    where = f" ({setting.flag}, {setting.env})" if setting else ""
    value = error.get("input")
    return ConfigError(f"setting {name}{where}: {error['msg']}, not {value!r}")


def load_settings(args: argparse.Namespace | None = None) -> _BaseServeSettings:
    """Merge flags (``args``), ``COGSYNC_*`` variables, ``--settings`` FILE and defaults."""
    args = args or argparse.Namespace()
    file: Path | None = getattr(args, "settings", None)
    if file is not None and not file.is_file():
        raise ConfigError(f"--settings {file}: no such file")

    class _Sourced(ServeSettings):  # type: ignore[misc,valid-type]
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            if file is None:
                return init_settings, env_settings
            return init_settings, env_settings, TomlConfigSettingsSource(settings_cls, file)

    try:
        loaded: _BaseServeSettings = _Sourced(**_given(args))
    except ValidationError as exc:
        raise _error(exc, file) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--settings {file} is not valid TOML: {exc}") from None
    loaded.server_limits()  # the limits' own bounds, as one-line errors
    loaded.realtime_limits()
    return loaded


def _mask(value: str) -> str:
    """A URL without its user info and query (where tokens hide)."""
    parts = urlsplit(value)
    if not parts.scheme or not parts.netloc:
        return value
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"***@{host}" if "@" in parts.netloc else host
    return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "", ""))


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(_mask(str(value)))


def render_settings(settings: _BaseServeSettings) -> str:
    """The effective settings as a TOML settings file (credentials in URLs masked)."""
    lines = []
    for setting in SETTINGS:
        value = getattr(settings, setting.name)
        if value is None:
            lines.append(f"# {setting.name} is not set")
        else:
            lines.append(f"{setting.name} = {_toml(value)}")
    return "\n".join(lines) + "\n"
