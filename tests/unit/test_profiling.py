"""Profiling: label hygiene and the never-raise start/stop (shared), and the pure parts of the
agent's py-spy endpoint: validation, Python detection, py-spy failures → HTTP status."""

from __future__ import annotations

import logging
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from agent import profiling as agent_profiling
from agent.profiling import (
    InvalidRequest,
    NotAPythonProcess,
    ProcessInfo,
    ProcessNotFound,
    ProfileRequest,
    ProfilerUnavailable,
    ProfilingError,
    PySpyError,
    check_python,
    classify_pyspy_failure,
    http_status_for,
    inspect_process,
    parse_profile_query,
    python_evidence,
    resolve_pyspy,
    validate_request,
)
from shared import profiling
from shared.profiling import (
    MAX_LABEL_VALUE_LENGTH,
    MAX_TAGS,
    profile_tags,
    sanitize_label_name,
    start_profiling,
    stop_profiling,
)

# ---------------------------------------------------------------- shared.profiling: labels

DOWNWARD = {"POD_NAME": "web-7f9c", "POD_NAMESPACE": "shop", "NODE_NAME": "node-1"}


@pytest.mark.parametrize(
    ("environ", "extra", "expected"),
    [
        pytest.param({}, None, {}, id="nothing"),
        pytest.param(
            DOWNWARD, None, {"pod": "web-7f9c", "namespace": "shop", "node": "node-1"}, id="pod"
        ),
        pytest.param(
            {**DOWNWARD, "CONTAINER_NAME": "app"},
            None,
            {"pod": "web-7f9c", "namespace": "shop", "node": "node-1", "container": "app"},
            id="container",
        ),
        pytest.param(
            {"POD_NAME": "", "POD_NAMESPACE": "  ", "NODE_NAME": "n"},
            None,
            {"node": "n"},
            id="empty-values-dropped",
        ),
        pytest.param(
            {"NODE_NAME": "from-env"},
            {"node": "from-arg", "zone": "eu-1a"},
            {"node": "from-arg", "zone": "eu-1a"},
            id="extra-wins",
        ),
        pytest.param(
            {},
            {"app.kubernetes.io/name": "web", "team-name": "core", "9lives": "x"},
            {"app_kubernetes_io_name": "web", "team_name": "core", "_9lives": "x"},
            id="names-sanitised",
        ),
        pytest.param(
            {},
            {"service_name": "spoof", "__name__": "x", "__meta": "y", "": "z", "...": "w"},
            {},
            id="reserved-and-unusable-names-dropped",
        ),
        pytest.param({}, {"zone": ""}, {}, id="empty-extra-dropped"),
        pytest.param({}, {" zone ": " eu "}, {"zone": "eu"}, id="stripped"),
        pytest.param(
            {"POD_NAME": "bad\udcffbyte"}, None, {"pod": "bad?byte"}, id="surrogates-replaced"
        ),
    ],
)
def test_profile_tags(
    environ: dict[str, str], extra: dict[str, str] | None, expected: dict[str, str]
) -> None:
    assert profile_tags(environ, extra) == expected


def test_profile_tags_bounds_value_length_and_count() -> None:
    tags = profile_tags({}, {"long": "x" * 1000})
    assert tags == {"long": "x" * MAX_LABEL_VALUE_LENGTH}
    many = profile_tags(DOWNWARD, {f"k{i}": "v" for i in range(50)})
    assert len(many) == MAX_TAGS
    assert many["pod"] == "web-7f9c"  # the Downward API labels come first and are kept


def test_profile_tags_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "from-os")
    assert profile_tags(None, None)["pod"] == "from-os"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("pod", "pod"),
        ("Pod_Name2", "Pod_Name2"),
        ("k8s.io/zone", "k8s_io_zone"),
        ("1st", "_1st"),
        ("_private", "_private"),
        ("__reserved", ""),
        ("___", ""),
        ("", ""),
        ("service_name", ""),
        ("ünïcode", "_n_code"),
        ("x" * 300, "x" * 128),
    ],
)
def test_sanitize_label_name(name: str, expected: str) -> None:
    assert sanitize_label_name(name) == expected


# ---------------------------------------------------------------- shared.profiling: start/stop


class FakePyroscope(types.ModuleType):
    """Stands in for pyroscope-io so no native profiler starts inside the test process."""

    def __init__(self, configure_result: Any = True) -> None:
        super().__init__("pyroscope")
        self.configure_calls: list[dict[str, Any]] = []
        self.shutdown_calls = 0
        self.configure_result = configure_result

    def configure(self, **kwargs: Any) -> Any:
        self.configure_calls.append(kwargs)
        if isinstance(self.configure_result, BaseException):
            raise self.configure_result
        return self.configure_result

    def shutdown(self) -> bool:
        self.shutdown_calls += 1
        return True


@pytest.fixture(autouse=True)
def fresh_profiling_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profiling, "_started", False)
    monkeypatch.setattr(profiling, "_logged", set())
    monkeypatch.delenv(profiling.SERVER_ENV, raising=False)


@pytest.fixture
def fake_pyroscope(monkeypatch: pytest.MonkeyPatch) -> FakePyroscope:
    fake = FakePyroscope()
    monkeypatch.setitem(sys.modules, "pyroscope", fake)
    return fake


def test_start_configures_once_with_tags_and_stop_flushes(fake_pyroscope: FakePyroscope) -> None:
    env = {**DOWNWARD, "CONTAINER_NAME": "agent"}
    started = start_profiling(
        "linescale-agent",
        "http://pyroscope:4040/",
        tags={"node": "node-1", "zone": "eu-1a"},
        environ=env,
        sample_rate=50,
    )
    assert started is True
    assert profiling.is_profiling()
    assert start_profiling("linescale-agent", "http://elsewhere:4040", environ=env) is True
    assert fake_pyroscope.configure_calls == [
        {
            "application_name": "linescale-agent",
            "server_address": "http://pyroscope:4040",
            "sample_rate": 50,
            "tags": {
                "pod": "web-7f9c",
                "namespace": "shop",
                "node": "node-1",
                "container": "agent",
                "zone": "eu-1a",
            },
            "upload_interval": 10,
        }
    ]
    assert stop_profiling() is True
    assert fake_pyroscope.shutdown_calls == 1
    assert not profiling.is_profiling()
    assert stop_profiling() is False  # nothing left to flush
    assert fake_pyroscope.shutdown_calls == 1


def test_server_address_from_environment_only_when_argument_is_none(
    fake_pyroscope: FakePyroscope,
) -> None:
    env = {profiling.SERVER_ENV: "http://from-env:4040"}
    assert start_profiling("svc", "", environ=env) is False  # explicit "" means off
    assert fake_pyroscope.configure_calls == []
    assert start_profiling("svc", environ=env) is True
    assert fake_pyroscope.configure_calls[0]["server_address"] == "http://from-env:4040"


@pytest.mark.parametrize(
    ("name", "server", "kwargs"),
    [
        pytest.param("svc", None, {}, id="no-server"),
        pytest.param("svc", "pyroscope:4040", {}, id="no-scheme"),
        pytest.param("  ", "http://p:4040", {}, id="no-name"),
        pytest.param("svc", "http://p:4040", {"sample_rate": 0}, id="bad-rate"),
        pytest.param("svc", "http://p:4040", {"upload_interval": 0}, id="bad-interval"),
    ],
)
def test_start_refuses_bad_configuration_without_raising(
    fake_pyroscope: FakePyroscope, name: str, server: str | None, kwargs: dict[str, Any]
) -> None:
    assert start_profiling(name, server, environ={}, **kwargs) is False
    assert fake_pyroscope.configure_calls == []
    assert not profiling.is_profiling()


def test_missing_pyroscope_returns_false_and_logs_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "pyroscope", None)  # makes the import raise ImportError
    caplog.set_level(logging.INFO, logger="shared.profiling")
    assert start_profiling("svc", "http://p:4040", environ={}) is False
    assert start_profiling("svc", "http://p:4040", environ={}) is False
    messages = [r.getMessage() for r in caplog.records if r.name == "shared.profiling"]
    assert len(messages) == 1
    assert "pyroscope-io cannot be imported" in messages[0]


def test_no_server_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="shared.profiling")
    for _ in range(3):
        assert start_profiling("svc", None, environ={}) is False
    messages = [r.getMessage() for r in caplog.records if r.name == "shared.profiling"]
    assert messages == [f"profiling disabled: no server address (set {profiling.SERVER_ENV})"]


@pytest.mark.parametrize(
    "result", [pytest.param(False, id="refused"), pytest.param(RuntimeError("boom"), id="raises")]
)
def test_configure_failure_is_contained(
    monkeypatch: pytest.MonkeyPatch, result: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakePyroscope(configure_result=result)
    monkeypatch.setitem(sys.modules, "pyroscope", fake)
    caplog.set_level(logging.INFO, logger="shared.profiling")
    assert start_profiling("svc", "http://p:4040", environ={}) is False
    assert not profiling.is_profiling()
    assert stop_profiling() is False
    assert fake.shutdown_calls == 0
    assert any("profiling disabled" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- agent.profiling: requests


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        ((123, 5, "collapsed"), {}, ProfileRequest(123, 5, "collapsed", 100)),
        ((1, 1.0, "speedscope"), {"rate": 250}, ProfileRequest(1, 1, "speedscope", 250)),
        ((1, 60, "collapsed"), {"max_seconds": 60}, ProfileRequest(1, 60, "collapsed", 100)),
        ((1, 30, "collapsed"), {"max_seconds": 30.5}, ProfileRequest(1, 30, "collapsed", 100)),
    ],
)
def test_validate_request_accepts(
    args: tuple[Any, ...], kwargs: dict[str, Any], expected: ProfileRequest
) -> None:
    assert validate_request(*args, **kwargs) == expected


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((0, 5, "collapsed"), {}, "pid"),
        ((-4, 5, "collapsed"), {}, "pid"),
        ((True, 5, "collapsed"), {}, "pid"),
        (("12", 5, "collapsed"), {}, "pid"),
        ((1, 0, "collapsed"), {}, "between 1 and 60"),
        ((1, 61, "collapsed"), {}, "between 1 and 60"),
        ((1, 20, "collapsed"), {"max_seconds": 10}, "between 1 and 10"),
        ((1, 1.5, "collapsed"), {}, "whole number"),
        ((1, float("nan"), "collapsed"), {}, "whole number"),
        ((1, float("inf"), "collapsed"), {}, "whole number"),
        ((1, "5", "collapsed"), {}, "number"),
        ((1, 5, "flamegraph"), {}, "format must be one of collapsed, speedscope"),
        ((1, 5, "raw"), {}, "format"),
        ((1, 5, "collapsed"), {"rate": 0}, "rate"),
        ((1, 5, "collapsed"), {"rate": 5000}, "rate"),
    ],
)
def test_validate_request_rejects(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        validate_request(*args, **kwargs)


@pytest.mark.parametrize(
    ("pid", "query", "expected"),
    [
        ("42", {}, ProfileRequest(42, 10, "collapsed", 100)),
        ("42", {"seconds": "3", "format": "speedscope"}, ProfileRequest(42, 3, "speedscope", 100)),
        ("42", {"seconds": "2.0", "rate": "50"}, ProfileRequest(42, 2, "collapsed", 50)),
    ],
)
def test_parse_profile_query(pid: str, query: dict[str, str], expected: ProfileRequest) -> None:
    assert parse_profile_query(pid, query) == expected


@pytest.mark.parametrize(
    ("pid", "query"),
    [
        ("abc", {}),
        ("-1", {}),
        ("42", {"seconds": "ten"}),
        ("42", {"seconds": "100"}),
        ("42", {"rate": "fast"}),
        ("42", {"format": "svg"}),
    ],
)
def test_parse_profile_query_rejects(pid: str, query: dict[str, str]) -> None:
    with pytest.raises(InvalidRequest):
        parse_profile_query(pid, query)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidRequest("x"), 400),
        (ProcessNotFound("x"), 404),
        (NotAPythonProcess("x"), 422),
        (ProfilerUnavailable("x"), 503),
        (PySpyError("x"), 500),
        (ProfilingError("x"), 500),
        (ValueError("x"), 500),
    ],
)
def test_http_status_for(error: Exception, status: int) -> None:
    assert http_status_for(error) == status


# ---------------------------------------------------------------- agent.profiling: detection

PY_MAPS = """\
55d0c0a00000-55d0c0a5f000 r--p 00000000 08:01 1234   /usr/bin/python3.11
7f1c2a000000-7f1c2a021000 r-xp 00000000 08:01 99     /usr/lib/x86_64-linux-gnu/libc.so.6
"""
LIBPYTHON_MAPS = """\
55d0c0a00000-55d0c0a5f000 r-xp 00000000 08:01 1234   /usr/local/bin/uwsgi
7f1c2a000000-7f1c2a021000 r-xp 00000000 08:01 77     /usr/lib/libpython3.12.so.1.0
"""
EXTENSION_MAPS = """\
55d0c0a00000-55d0c0a5f000 r-xp 00000000 08:01 1234   /app/server
7f1c2a000000-7f1c2a021000 r-xp 00000000 08:01 78     /app/lib/_ssl.cpython-311-x86_64-linux-gnu.so
"""
SLEEP_MAPS = """\
55d0c0a00000-55d0c0a5f000 r-xp 00000000 08:01 1234   /usr/bin/sleep
7f1c2a000000-7f1c2a021000 r-xp 00000000 08:01 99     /usr/lib/x86_64-linux-gnu/libc.so.6
7ffd1a000000-7ffd1a021000 rw-p 00000000 00:00 0      [stack]
"""


@pytest.mark.parametrize(
    ("exe", "maps", "expected"),
    [
        ("/usr/bin/python3.11", None, "executable /usr/bin/python3.11"),
        ("/usr/local/bin/python3", "", "executable /usr/local/bin/python3"),
        ("/usr/bin/python", None, "executable /usr/bin/python"),
        ("/opt/py/bin/python3.13t", None, "executable /opt/py/bin/python3.13t"),
        ("/usr/bin/python3.11 (deleted)", None, "executable /usr/bin/python3.11 (deleted)"),
        (None, PY_MAPS, "maps /usr/bin/python3.11"),
        ("/usr/local/bin/uwsgi", LIBPYTHON_MAPS, "maps /usr/lib/libpython3.12.so.1.0"),
        ("/app/server", EXTENSION_MAPS, "maps /app/lib/_ssl.cpython-311-x86_64-linux-gnu.so"),
        ("/usr/bin/sleep", SLEEP_MAPS, None),
        ("/usr/bin/python3-config", None, None),
        ("/usr/bin/pythonista", None, None),
        (None, None, None),
        (None, "", None),
    ],
)
def test_python_evidence(exe: str | None, maps: str | None, expected: str | None) -> None:
    assert python_evidence(exe, maps) == expected


def _info(**overrides: Any) -> ProcessInfo:
    fields: dict[str, Any] = {
        "pid": 7,
        "comm": "sleep",
        "exe": "/usr/bin/sleep",
        "cmdline": "sleep 30",
        "maps": SLEEP_MAPS,
        "state": "S",
        "denied": False,
    }
    fields.update(overrides)
    return ProcessInfo(**fields)


@pytest.mark.parametrize(
    ("info", "error", "message"),
    [
        (_info(), NotAPythonProcess, r"pid 7 \(sleep\) exe /usr/bin/sleep cmdline 'sleep 30'"),
        (_info(state="Z"), ProcessNotFound, "has exited"),
        (_info(exe=None, maps=None, denied=True), ProfilerUnavailable, "SYS_PTRACE"),
        (_info(comm="kthreadd", exe=None, maps="", cmdline=None), NotAPythonProcess, "kernel"),
    ],
)
def test_check_python_errors(info: ProcessInfo, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        check_python(info)


def test_check_python_accepts_python() -> None:
    assert check_python(_info(exe="/usr/bin/python3.11")) == "executable /usr/bin/python3.11"


def test_inspect_process_reads_a_proc_tree(tmp_path: Path) -> None:
    pid_dir = tmp_path / "321"
    pid_dir.mkdir()
    (pid_dir / "stat").write_text("321 (my (odd) name) S 1 321 321 0 -1\n")
    (pid_dir / "comm").write_text("my (odd) name\n")
    (pid_dir / "cmdline").write_bytes(b"/usr/bin/python3\x00-m\x00app\x00")
    (pid_dir / "maps").write_text(PY_MAPS)
    (pid_dir / "exe").symlink_to("/usr/bin/python3.11")
    info = inspect_process(321, tmp_path)
    assert info == ProcessInfo(
        pid=321,
        comm="my (odd) name",
        exe="/usr/bin/python3.11",
        cmdline="/usr/bin/python3 -m app",
        maps=PY_MAPS,
        state="S",
        denied=False,
    )
    assert check_python(info) == "executable /usr/bin/python3.11"
    with pytest.raises(ProcessNotFound, match="no process with pid 322"):
        inspect_process(322, tmp_path)


# ---------------------------------------------------------------- agent.profiling: py-spy errors

PYSPY_GONE = """\
Error: Failed to get process executable name. Check that the process is running.

Caused by:
    0: No such file or directory (os error 2)
    1: No such file or directory (os error 2)

Stack backtrace:
   0: <E as anyhow::context::ext::StdError>::ext_context
   1: py_spy::python_process_info::PythonProcessInfo::new
"""
PYSPY_NOT_PYTHON = """\
Error: Failed to find python version from target process

Stack backtrace:
   0: anyhow::error::<impl anyhow::Error>::msg
   1: py_spy::python_process_info::get_python_version
"""
PYSPY_DENIED = """\
py-spy> Sampling process 100 times a second for 1 seconds. Press Control-C to exit.
Error: Operation not permitted (os error 1)
"""
PYSPY_PERMISSION_CAUSE = """\
Error: Failed to open process
Caused by:
    0: Permission denied (os error 13)
"""
PYSPY_PANIC = """\
thread 'main' (14310) panicked at src/config.rs:398:65:
invalid duration: ParseIntError { kind: InvalidDigit }
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace
"""
PYSPY_PTRACE_IN_BACKTRACE_ONLY = """\
Error: something odd
Stack backtrace:
   0: nix::sys::ptrace::attach (Operation not permitted)
"""


@pytest.mark.parametrize(
    ("output", "error", "message"),
    [
        (PYSPY_GONE, ProcessNotFound, "Check that the process is running"),
        (PYSPY_NOT_PYTHON, NotAPythonProcess, "Failed to find python version"),
        (PYSPY_DENIED, ProfilerUnavailable, "hostPID: true"),
        (PYSPY_PERMISSION_CAUSE, ProfilerUnavailable, "Permission denied"),
        (PYSPY_PANIC, PySpyError, "invalid duration"),
        (PYSPY_PTRACE_IN_BACKTRACE_ONLY, PySpyError, "something odd"),
        ("", PySpyError, "no output"),
    ],
)
def test_classify_pyspy_failure(output: str, error: type[Exception], message: str) -> None:
    result = classify_pyspy_failure(1, output, 99)
    assert type(result) is error
    assert message in str(result)
    assert "anyhow" not in str(result)  # the backtrace is left out


# ---------------------------------------------------------------- agent.profiling: py-spy lookup


def test_resolve_pyspy_explicit_path(tmp_path: Path) -> None:
    exe = tmp_path / "py-spy"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert resolve_pyspy(str(exe)) == str(exe)
    with pytest.raises(ProfilerUnavailable, match="SYS_PTRACE"):
        resolve_pyspy(str(tmp_path / "missing"))
    exe.chmod(0o644)
    with pytest.raises(ProfilerUnavailable, match="not executable"):
        resolve_pyspy(str(exe))


def test_resolve_pyspy_missing_everywhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(ProfilerUnavailable, match="pip install py-spy"):
        resolve_pyspy(None)


async def test_profile_process_validates_before_touching_the_system(tmp_path: Path) -> None:
    fmt: Any = "svg"  # what an unchecked query string could carry
    with pytest.raises(InvalidRequest):
        await agent_profiling.profile_process(
            1, 5, fmt, pyspy=str(tmp_path / "none"), proc_root=tmp_path
        )
