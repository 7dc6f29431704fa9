"""``linescale demo`` end to end: real child processes, a summary, and nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

LINESCALE = str(Path(sys.executable).parent / "linescale")


def demo_children(since: float) -> list[psutil.Process]:
    """Agent and controller processes started by a demo after ``since``."""
    found = []
    for process in psutil.process_iter(["cmdline", "create_time"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if process.info["create_time"] >= since - 1 and (
            "line-node-" in cmdline or ("-m controller" in cmdline and "127.0.0.1:" in cmdline)
        ):
            found.append(process)
    return found


def test_demo_runs_three_zones_converges_and_leaves_no_process() -> None:
    started = time.time()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINESCALE_")}
    result = subprocess.run(
        [LINESCALE, "demo", "--duration", "8", "--no-live"],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        check=False,
    )
    shown = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, shown
    assert "agents registered: 3 of 3 (a, b, c)" in result.stdout, shown
    assert "converged on routing v2 / tuning v1: 3 of 3" in result.stdout, shown
    assert "processes stopped: 4 cleanly" in result.stdout, shown
    assert demo_children(started) == [], shown


def test_demo_stops_its_children_when_interrupted() -> None:
    started = time.time()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINESCALE_")}
    with subprocess.Popen(
        [LINESCALE, "demo", "--duration", "60", "--no-live"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as demo:
        deadline = time.monotonic() + 30
        while len(demo_children(started)) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(demo_children(started)) == 4
        time.sleep(3)
        demo.send_signal(2)  # SIGINT, as Ctrl-C
        out, err = demo.communicate(timeout=30)
    assert demo.returncode == 0, err
    assert "summary after" in out
    assert demo_children(started) == []
