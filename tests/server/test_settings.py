"""``cogsync serve`` settings: flags > ``COGSYNC_*`` environment > settings file > defaults."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cogsync.cli import build_parser
from cogsync.exceptions import ConfigError
from cogsync.server.settings import SETTINGS, load_settings, render_settings


def settings_of(*argv: str, env: dict[str, str] | None = None) -> Any:
    args = build_parser().parse_args(["serve", *argv])
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("COGSYNC_")]:
            patch.delenv(name)
        for name, value in (env or {}).items():
            patch.setenv(name, value)
        return load_settings(args)


def test_defaults_are_the_flags_defaults() -> None:
    settings = settings_of()
    assert (settings.port, settings.host, settings.keepalive) == (8080, "127.0.0.1", 60.0)
    assert settings.server_limits().max_connections == 1000


def test_flags_win_over_environment_which_wins_over_the_file(tmp_path: Path) -> None:
    file = tmp_path / "serve.toml"
    file.write_text(
        'port = 1111\nhost = "0.0.0.0"\nkeepalive = 5.0\nmax_connections = 7\n'
        'oidc_client_id = ["from-file"]\nrealtime_init_timeout = 3.0\n'
    )
    env = {"COGSYNC_PORT": "2222", "COGSYNC_KEEPALIVE": "9", "COGSYNC_MAX_CONNECTIONS": "8"}
    settings = settings_of("--settings", str(file), "--port", "3333", env=env)
    assert settings.port == 3333  # flag
    assert settings.keepalive == 9.0  # env over file
    assert settings.host == "0.0.0.0"  # file over default
    assert settings.server_limits().max_connections == 8
    assert settings.realtime_limits().init_timeout == 3.0
    assert settings.oidc_client_id == ["from-file"]
    env_list = settings_of(env={"COGSYNC_OIDC_CLIENT_ID": '["a", "b"]'})
    assert env_list.oidc_client_id == ["a", "b"]


def test_every_setting_has_a_flag_env_and_field() -> None:
    names = {s.name for s in SETTINGS}
    fields = set(type(settings_of()).model_fields)
    assert names == fields
    assert all(s.env == "COGSYNC_" + s.name.upper() for s in SETTINGS)


@pytest.mark.parametrize(
    ("argv", "env", "file_text", "words"),
    [
        (["--port", "70000"], {}, None, ["port", "--port", "COGSYNC_PORT"]),
        ([], {"COGSYNC_PORT": "-1"}, None, ["port", "COGSYNC_PORT"]),
        ([], {}, "keepalive = -3.0\n", ["keepalive", "--keepalive"]),
        ([], {}, "colour = 1\n", ["unknown setting 'colour'"]),
        ([], {}, "port = \n", ["not valid TOML"]),
        (["--header-timeout", "-1"], {}, None, ["header_timeout"]),
        ([], {"COGSYNC_REALTIME_INIT_TIMEOUT": "0"}, None, ["--realtime-init-timeout"]),
        (["--log-level", "loud"], {}, None, None),
        ([], {"COGSYNC_LOG_FORMAT": "xml"}, None, ["log_format", "COGSYNC_LOG_FORMAT"]),
        ([], {"COGSYNC_METRICS_PORT": "65536"}, None, ["metrics_port"]),
    ],
)
def test_each_bad_setting_is_one_line_naming_it(
    tmp_path: Path, argv: list[str], env: dict[str, str], file_text: str | None, words: list[str]
) -> None:
    if file_text is not None:
        (tmp_path / "s.toml").write_text(file_text)
        argv = [*argv, "--settings", str(tmp_path / "s.toml")]
    if words is None:  # argparse refuses an unknown choice itself
        with pytest.raises(SystemExit):
            settings_of(*argv, env=env)
        return
    with pytest.raises(ConfigError) as caught:
        settings_of(*argv, env=env)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_print_settings_masks_credentials_in_urls(tmp_path: Path) -> None:
    settings = settings_of(
        "--trust-identity-pool", "us-east-1:pool",
        "--trusted-pool-jwks", "https://user:hunter2@keys.example/jwks?token=s3cret",
    )  # fmt: skip
    text = render_settings(settings)
    assert "hunter2" not in text and "s3cret" not in text
    assert 'trusted_pool_jwks = ["https://***@keys.example/jwks?***"]' in text
    assert "# metrics_port is not set" in text


def test_print_settings_command_reads_the_environment(tmp_path: Path) -> None:
    env = {**os.environ, "COGSYNC_PORT": "4321", "COGSYNC_LOG_FORMAT": "json"}
    done = subprocess.run(
        [sys.executable, "-m", "cogsync", "serve", "--print-settings"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "port = 4321" in done.stdout and 'log_format = "json"' in done.stdout
    assert not (tmp_path / "cogsync-data").exists()  # printing starts nothing
