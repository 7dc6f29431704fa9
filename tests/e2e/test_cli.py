"""The command line: exit codes and messages an operator sees."""

from __future__ import annotations

import json
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


HORIZONTAL = {
    "kind": "horizontal",
    "now": 1_700_000_000,
    "policy": {
        "minReplicas": 2,
        "maxReplicas": 6,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 30},
                },
            }
        ],
    },
    "currentReplicas": 3,
    # Kubernetes' TestScaleUp: 300m + 500m + 700m of 3 x 1 core at a 30 % target -> 5.
    "pods": [
        {"name": f"p{i}", "requests": {"cpu": "1"}, "metrics": {"cpu": level}}
        for i, level in enumerate(["300m", "500m", "700m"])
    ],
}


def test_decide_reads_a_file_or_stdin_and_prints_the_decision(tmp_path: Path) -> None:
    path = tmp_path / "input.json"
    path.write_text(json.dumps(HORIZONTAL))
    from_file = run("decide", "--input", str(path))
    from_stdin = subprocess.run(
        [LINESCALE, "decide", "--input", "-"],
        input=json.dumps(HORIZONTAL),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    for result in (from_file, from_stdin):
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout)
        assert (answer["desiredReplicas"], answer["metrics"][0]["currentUtilization"]) == (5, 50)


@pytest.mark.parametrize(
    ("body", "code", "named"),
    [
        pytest.param({**HORIZONTAL, "kind": "vertical-ish"}, 1, "kind", id="unknown-kind"),
        pytest.param({**HORIZONTAL, "currentReplicas": "3"}, 1, "currentReplicas", id="bad-type"),
        pytest.param(
            {**HORIZONTAL, "policy": {"maxReplicas": 0}}, 1, "policy.maxReplicas", id="bad-policy"
        ),
        pytest.param(
            {**HORIZONTAL, "pods": [{"name": "p0", "metrics": {"cpu": "1"}}]},
            1,
            "request",
            id="utilization-without-request-is-422",
        ),
    ],
)
def test_decide_refuses_bad_input_naming_the_problem(
    tmp_path: Path, body: dict[str, object], code: int, named: str
) -> None:
    path = tmp_path / "input.json"
    path.write_text(json.dumps(body))
    result = run("decide", "--input", str(path))
    assert result.returncode == code
    assert named in json.loads(result.stdout)["error"]
    assert named in result.stderr


def test_decide_on_a_missing_or_non_json_file_exits_2(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{nope")
    for path in (tmp_path / "absent.json", tmp_path / "bad.json"):
        result = run("decide", "--input", str(path))
        assert result.returncode == 2
        assert str(path) in result.stderr
