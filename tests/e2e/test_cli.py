"""The command line: exit codes and messages an operator sees."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TOKEN = "0123456789abcdef-token"
# The installed console script, next to the interpreter running the tests.
LINESCALE = str(Path(sys.executable).parent / "linescale")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LINESCALE_")}
    return subprocess.run(
        [LINESCALE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **(env or {})},
        check=False,
    )


def test_version_prints_the_package_version() -> None:
    result = run("version")
    assert result.returncode == 0
    assert result.stdout.startswith("linescale ")


def test_unknown_command_exits_2_with_usage() -> None:
    result = run("fly")
    assert result.returncode == 2
    assert "unknown command 'fly'" in result.stderr


@pytest.mark.parametrize(
    ("args", "file_text", "env", "named"),
    [
        pytest.param(
            ["agent", "--node", "n1", "--zone", "a"],
            "agent:\n  report_interval_seconds: zero\n",
            {"LINESCALE_TOKEN": TOKEN},
            "agent.report_interval_seconds",
            id="agent-bad-value-in-file",
        ),
        pytest.param(
            ["controller"],
            "controller:\n  stale_after: 3\n",
            {"LINESCALE_TOKEN": TOKEN},
            "controller.stale_after",
            id="controller-unknown-key",
        ),
        pytest.param(
            ["controller", "--listen", "127.0.0.1:0"],
            "",
            {},
            "token",
            id="controller-without-token",
        ),
        pytest.param(
            ["agent", "--listen", "127.0.0.1:0", "--zone", "a"],
            "",
            {"LINESCALE_TOKEN": TOKEN},
            "agent.node",
            id="agent-without-node",
        ),
        pytest.param(
            ["agent", "--node", "n1", "--zone", "a", "--listen", "127.0.0.1"],
            "",
            {"LINESCALE_TOKEN": TOKEN},
            "agent.listen",
            id="agent-bad-listen-flag",
        ),
    ],
)
def test_bad_configuration_exits_2_naming_the_key(
    tmp_path: Path, args: list[str], file_text: str, env: dict[str, str], named: str
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(file_text)
    result = run(*args, "--config", str(config), env=env)
    assert result.returncode == 2, result.stderr
    assert named in result.stderr
    assert TOKEN not in result.stderr + result.stdout
