"""On-demand py-spy profiles of other processes: a real Python child burning CPU in a named
function, a dead pid, a non-Python process, and no py-spy left behind on cancel or timeout.

Needs the py-spy CLI (``pip install py-spy``, found on PATH or next to this Python); without
it the tests that run py-spy skip, or fail under ``LINESCALE_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import profiling
from agent.profiling import (
    NotAPythonProcess,
    ProcessNotFound,
    ProfileFormat,
    ProfilerUnavailable,
    PySpyError,
    http_status_for,
    profile_process,
    resolve_pyspy,
)

from services import REQUIRE_SERVICES_ENV

BURNER = textwrap.dedent(
    """
    import sys, time

    def linescale_spin_marker():
        deadline = time.monotonic() + 60  # never outlive a broken test by much
        total = 0
        print("ready", flush=True)
        while time.monotonic() < deadline:
            total += sum(i * i for i in range(200))

    linescale_spin_marker()
    """
)


@pytest.fixture(scope="module")
def pyspy() -> str:
    try:
        return resolve_pyspy(None)
    except ProfilerUnavailable as error:
        message = f"py-spy not installed (pip install py-spy): {error}"
        if os.environ.get(REQUIRE_SERVICES_ENV) == "1":
            pytest.fail(f"{message} ({REQUIRE_SERVICES_ENV}=1)", pytrace=False)
        pytest.skip(message)


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.fixture
def burner() -> Iterator[int]:
    """A Python process spinning in ``linescale_spin_marker``; yields its pid."""
    proc = subprocess.Popen(
        [sys.executable, "-c", BURNER], stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield proc.pid
    finally:
        _stop(proc)


@pytest.fixture
def sleeper() -> Iterator[int]:
    proc = subprocess.Popen(["sleep", "30"], stdout=subprocess.PIPE, text=True)
    try:
        yield proc.pid
    finally:
        _stop(proc)


def _pyspy_processes_for(pid: int) -> list[int]:
    """Pids of py-spy processes still attached to ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg.endswith(b"py-spy") for arg in argv[:1]) and str(pid).encode() in argv:
            found.append(int(entry.name))
    return found


async def _profile_or_skip(pid: int, fmt: ProfileFormat, pyspy: str) -> profiling.ProfileResult:
    try:
        return await profile_process(pid, 1, fmt, pyspy=pyspy)
    except ProfilerUnavailable as error:
        # py-spy is installed but may not read the child (no SYS_PTRACE, Yama scope...).
        if os.environ.get(REQUIRE_SERVICES_ENV) == "1":
            raise
        pytest.skip(f"py-spy cannot profile here: {error}")


async def test_collapsed_profile_names_the_busy_function(burner: int, pyspy: str) -> None:
    result = await _profile_or_skip(burner, "collapsed", pyspy)
    text = result.data.decode()
    assert "linescale_spin_marker" in text, text
    assert result.content_type == "text/plain; charset=utf-8"
    assert (result.pid, result.seconds, result.fmt) == (burner, 1, "collapsed")
    assert not result.process_exited
    # Folded stacks: "frame;frame;... count" per line.
    assert all(line.rsplit(" ", 1)[1].isdigit() for line in text.splitlines())


async def test_speedscope_profile_is_json(burner: int, pyspy: str) -> None:
    result = await _profile_or_skip(burner, "speedscope", pyspy)
    document = json.loads(result.data)
    names = [frame["name"] for frame in document["shared"]["frames"]]
    assert "linescale_spin_marker" in names
    assert result.content_type == "application/json"
    assert result.filename == f"pid{burner}-1s.speedscope.json"


async def test_dead_pid_is_404() -> None:
    proc = await asyncio.create_subprocess_exec("true")
    await proc.wait()
    with pytest.raises(ProcessNotFound) as caught:
        await profile_process(proc.pid, 1, "collapsed", pyspy=None)
    assert http_status_for(caught.value) == 404


async def test_non_python_process_is_422(sleeper: int) -> None:
    with pytest.raises(NotAPythonProcess) as caught:
        await profile_process(sleeper, 1, "collapsed", pyspy=None)
    assert http_status_for(caught.value) == 422
    assert "sleep 30" in str(caught.value)
    assert "/sleep" in str(caught.value)


async def test_cancel_kills_pyspy(burner: int, pyspy: str) -> None:
    task = asyncio.create_task(profile_process(burner, 10, "collapsed", pyspy=pyspy))
    for _ in range(100):
        await asyncio.sleep(0.05)
        if _pyspy_processes_for(burner):
            break
    else:
        pytest.fail("py-spy never started")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _pyspy_processes_for(burner) == []


async def test_timeout_kills_pyspy(
    burner: int, pyspy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(profiling, "TIMEOUT_MARGIN_SECONDS", -0.5)  # 1 s profile, 0.5 s limit
    with pytest.raises(PySpyError, match=r"did not finish within 0\.5s"):
        await profile_process(burner, 1, "collapsed", pyspy=pyspy)
    assert _pyspy_processes_for(burner) == []


def _fake_pyspy(tmp_path: Path, script: str) -> str:
    path = tmp_path / "py-spy"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize(
    ("script", "error", "status", "message"),
    [
        pytest.param(
            'echo "Error: Operation not permitted (os error 1)" >&2; exit 1\n',
            ProfilerUnavailable,
            503,
            "SYS_PTRACE",
            id="ptrace-denied",
        ),
        pytest.param("exit 0\n", PySpyError, 500, "wrote no profile", id="no-output"),
        # A child holding the pipe open: only killing the process group ends the call.
        pytest.param("sleep 31.7\n:\n", PySpyError, 500, "did not finish", id="hangs"),
    ],
)
async def test_pyspy_failures_map_to_errors(
    burner: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    script: str,
    error: type[Exception],
    status: int,
    message: str,
) -> None:
    """The glue around py-spy, with a stand-in script that fails the way py-spy does."""
    monkeypatch.setattr(profiling, "TIMEOUT_MARGIN_SECONDS", -0.7)
    with pytest.raises(error, match=message) as caught:
        await profile_process(burner, 1, "collapsed", pyspy=_fake_pyspy(tmp_path, script))
    assert http_status_for(caught.value) == status
    assert _processes_with_argv([b"sleep", b"31.7"]) == []


def _processes_with_argv(argv: list[bytes]) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().split(b"\0")[: len(argv)] == argv:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
