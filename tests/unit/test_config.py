"""Settings: defaults < file < environment < flags; bad keys and values are named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.config import ConfigError, env_overrides, load_settings

TOKEN = "0123456789abcdef-token"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "linescale.yaml"
    path.write_text(text)
    return path


def test_defaults_need_no_file() -> None:
    settings = load_settings(environ={})
    assert settings.agent.listen == "0.0.0.0:9400"
    assert settings.controller.agent_stale_after_seconds == 15.0


def test_environment_overrides_file_and_flags_override_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "agent:\n  zone: from-file\n  node: from-file\n  region: from-file\n")
    settings = load_settings(
        path,
        environ={"LINESCALE_AGENT__ZONE": "from-env", "LINESCALE_AGENT__NODE": "from-env"},
        overrides={"agent": {"node": "from-flag"}},
    )
    assert (settings.agent.region, settings.agent.zone, settings.agent.node) == (
        "from-file",
        "from-env",
        "from-flag",
    )


def test_environment_strings_are_converted_to_typed_values() -> None:
    settings = load_settings(environ={"LINESCALE_AGENT__REPORT_INTERVAL_SECONDS": "2.5"})
    assert settings.agent.report_interval_seconds == 2.5


def test_token_is_read_from_token_file_and_never_shown(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    settings = load_settings(environ={"LINESCALE_TOKEN_FILE": str(secret)})
    assert settings.require_token() == TOKEN
    assert TOKEN not in repr(settings)
    assert TOKEN not in str(settings.model_dump())


def test_test_switches_under_the_prefix_are_not_configuration() -> None:
    assert env_overrides({"LINESCALE_REQUIRE_SERVICES": "1", "HOME": "/root"}) == {}


@pytest.mark.parametrize(
    ("file_text", "environ", "named"),
    [
        pytest.param("agent:\n  bogus: 1\n", {}, "agent.bogus", id="unknown-key-in-file"),
        pytest.param("colour: blue\n", {}, "colour", id="unknown-top-level-key"),
        pytest.param(
            "agent:\n  report_interval_seconds: -1\n",
            {},
            "agent.report_interval_seconds",
            id="negative-interval",
        ),
        pytest.param("agent:\n  listen: nowhere\n", {}, "agent.listen", id="listen-without-port"),
        pytest.param("log_level: loud\n", {}, "log_level", id="unknown-log-level"),
        pytest.param(
            "",
            {"LINESCALE_CONTROLLER__MAX_AGENTS": "many"},
            "controller.max_agents",
            id="env-not-int",
        ),
        pytest.param(
            "", {"LINESCALE_AGENT__NOPE": "1"}, "agent.nope", id="unknown-key-in-environment"
        ),
        pytest.param(
            "agent:\n  controller_url: controller:9500\n",
            {},
            "agent.controller_url",
            id="url-without-scheme",
        ),
        pytest.param("- a\n- b\n", {}, "mapping", id="file-not-a-mapping"),
        pytest.param("agent: [\n", {}, "YAML", id="file-not-yaml"),
        pytest.param(
            "",
            {"LINESCALE_TOKEN_FILE": "/nonexistent/token"},
            "token_file",
            id="missing-token-file",
        ),
    ],
)
def test_bad_configuration_is_refused_naming_the_key(
    tmp_path: Path, file_text: str, environ: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_settings(write(tmp_path, file_text), environ=environ)


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml"):
        load_settings(tmp_path / "nope.yaml", environ={})


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        pytest.param("", "not set", id="no-token"),
        pytest.param("short", "shorter than 16", id="short-token"),
    ],
)
def test_running_without_a_usable_token_is_refused(token: str, problem: str) -> None:
    settings = load_settings(environ={"LINESCALE_TOKEN": token})
    with pytest.raises(ConfigError, match=problem):
        settings.require_token()


def test_settings_are_frozen() -> None:
    settings = load_settings(environ={})
    attempt: Any = settings.agent
    with pytest.raises(ValueError, match="frozen"):
        attempt.zone = "x"


def test_partial_nested_value_keeps_the_rest_of_its_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "agent:\n  bottlenecks:\n    fd_usage_percent:\n      warning: 60\n")
    settings = load_settings(path, environ={"LINESCALE_AGENT__COLLECTOR__TOP_PROCESSES": "5"})
    assert settings.agent.bottlenecks.fd_usage_percent.critical == 90
    assert settings.agent.bottlenecks.fd_usage_percent.warning == 60
    assert settings.agent.collector.top_processes == 5
    assert settings.agent.collector.interval_seconds == 5.0


def test_threshold_order_is_checked_after_merging(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"agent\.bottlenecks: fd_usage_percent"):
        load_settings(environ={"LINESCALE_AGENT__BOTTLENECKS__FD_USAGE_PERCENT__WARNING": "95"})


def test_static_dataplane_services_read_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(
        "agent:\n  dataplane:\n    services:\n"
        "      - name: orders\n        listen: 127.0.0.1:18080\n        policy: peak_ewma\n"
        '        endpoints: ["127.0.0.1:9001", {address: "10.0.0.7:80", zone: b, weight: 2}]\n'
        "        timeouts: {per_try_seconds: 2}\n"
    )
    (service,) = load_settings(str(path), environ={}).agent.dataplane.services
    assert (service.policy, service.timeouts.per_try_seconds) == ("p2c_peak_ewma", 2.0)
    assert service.endpoints[0] == "127.0.0.1:9001"
    assert not isinstance(service.endpoints[1], str)
    assert (service.endpoints[1].zone, service.endpoints[1].weight) == ("b", 2)


def test_a_bad_static_service_names_its_field(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(
        "agent:\n  dataplane:\n    services:\n"
        "      - name: orders\n        listen: nowhere\n        endpoints: []\n"
    )
    with pytest.raises(ConfigError, match=r"agent\.dataplane\.services\.0\.(listen|endpoints)"):
        load_settings(str(path), environ={})
