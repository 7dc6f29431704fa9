"""``linescale demo`` end to end: real child processes, a summary, and nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil

LINESCALE = str(Path(sys.executable).parent / "linescale")


MARKER = "DEMO_TEST_MARKER"  # outside the LINESCALE_ prefix, so never read as configuration


def demo_children(marker: str, demo_pid: int = 0) -> list[psutil.Process]:
    """Processes carrying this run's marker in their environment: the demo's children
    inherit it, and nothing else on the machine (other tests, other runs) has it."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.pid != demo_pid and process.environ().get(MARKER) == marker:
                found.append(process)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def demo_env(marker: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LINESCALE_")}
    return {**base, MARKER: marker}


def test_demo_runs_three_zones_converges_and_leaves_no_process() -> None:
    marker = uuid.uuid4().hex
    result = subprocess.run(
        [LINESCALE, "demo", "--duration", "8", "--no-live"],
        capture_output=True,
        text=True,
        timeout=90,
        env=demo_env(marker),
        check=False,
    )
    shown = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, shown
    assert "agents registered: 3 of 3 (a, b, c)" in result.stdout, shown
    assert "converged on routing v2 / tuning v1: 3 of 3" in result.stdout, shown
    assert "processes stopped: 4 cleanly" in result.stdout, shown
    assert demo_children(marker) == [], shown


def test_demo_stops_its_children_when_interrupted() -> None:
    marker = uuid.uuid4().hex
    with subprocess.Popen(
        [LINESCALE, "demo", "--duration", "60", "--no-live"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=demo_env(marker),
    ) as demo:
        deadline = time.monotonic() + 30
        while len(demo_children(marker, demo.pid)) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(demo_children(marker, demo.pid)) == 4
        time.sleep(3)
        demo.send_signal(2)  # SIGINT, as Ctrl-C
        out, err = demo.communicate(timeout=30)
    assert demo.returncode == 0, err
    assert "summary after" in out
    assert demo_children(marker) == []
