"""On-demand CPU profiles of any Python process on the node, taken with py-spy.

pyroscope-io only profiles the process it runs in, so for "what is pod X burning CPU on right
now" the agent runs the py-spy CLI against the pid. That needs the agent to see the node's
pids (``hostPID: true``) and to be allowed to read other processes' memory (the
``SYS_PTRACE`` capability); without them this module answers ``ProfilerUnavailable`` with
that advice instead of a bare py-spy error.

The pure parts (request validation, deciding from /proc text whether a process is Python,
classifying py-spy's failures, errors → HTTP status) are separate functions so they can be
table-tested; ``profile_process`` only glues them to /proc and the subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import math
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Final, Literal, get_args

__all__ = [
    "DEFAULT_SECONDS",
    "FORMATS",
    "InvalidRequest",
    "NotAPythonProcess",
    "ProcessInfo",
    "ProcessNotFound",
    "ProfileFormat",
    "ProfileRequest",
    "ProfileResult",
    "ProfilerUnavailable",
    "ProfilingError",
    "PySpyError",
    "check_python",
    "classify_pyspy_failure",
    "http_status_for",
    "inspect_process",
    "parse_profile_query",
    "profile_process",
    "python_evidence",
    "resolve_pyspy",
    "validate_request",
]

ProfileFormat = Literal["collapsed", "speedscope"]
FORMATS: Final[tuple[str, ...]] = get_args(ProfileFormat)
# "collapsed" is what py-spy calls "raw": folded stacks, one "frame;frame;frame count" per line.
_PYSPY_FORMAT: Final[Mapping[str, str]] = {"collapsed": "raw", "speedscope": "speedscope"}
_CONTENT_TYPE: Final[Mapping[str, str]] = {
    "collapsed": "text/plain; charset=utf-8",
    "speedscope": "application/json",
}
_SUFFIX: Final[Mapping[str, str]] = {"collapsed": ".txt", "speedscope": ".speedscope.json"}

DEFAULT_SECONDS: Final = 10.0
MIN_SECONDS: Final = 1.0
DEFAULT_RATE: Final = 100
# py-spy needs time to attach and write its output after the sampling window.
TIMEOUT_MARGIN_SECONDS: Final = 15.0
_MAX_MESSAGE: Final = 500

_FIX_HINT: Final = (
    "install py-spy in the agent image (pip install py-spy) or set profiling.pyspy_path, "
    "and run the agent with hostPID: true and securityContext.capabilities.add: [SYS_PTRACE]"
)


class ProfilingError(Exception):
    """Base of the errors ``profile_process`` raises; ``status`` is the HTTP answer."""

    status: ClassVar[int] = 500


class InvalidRequest(ProfilingError):  # noqa: N818 - names read as HTTP outcomes
    """Bad pid, duration or format."""

    status = 400


class ProcessNotFound(ProfilingError):  # noqa: N818 - names read as HTTP outcomes
    """No such pid (or it exited) in the pid namespace the agent sees."""

    status = 404


class NotAPythonProcess(ProfilingError):  # noqa: N818 - names read as HTTP outcomes
    """The process exists but is not a CPython interpreter py-spy could read."""

    status = 422


class ProfilerUnavailable(ProfilingError):  # noqa: N818 - names read as HTTP outcomes
    """py-spy is missing or not allowed to read the process; the message says how to fix it."""

    status = 503


class PySpyError(ProfilingError):
    """py-spy ran but failed or hung for another reason."""

    status = 500


def http_status_for(error: BaseException) -> int:
    """The HTTP status for an error out of this module; 500 for anything unexpected."""
    return error.status if isinstance(error, ProfilingError) else 500


@dataclass(frozen=True)
class ProfileRequest:
    """A validated request, in the units py-spy takes."""

    pid: int
    seconds: int
    fmt: ProfileFormat
    rate: int = DEFAULT_RATE


@dataclass(frozen=True)
class ProfileResult:
    """The profile as py-spy wrote it, ready to be sent as an HTTP body."""

    data: bytes
    content_type: str
    pid: int
    seconds: int
    fmt: ProfileFormat
    # The process exited while being sampled, so the profile covers less than ``seconds``.
    process_exited: bool = False

    @property
    def filename(self) -> str:
        """A name for ``Content-Disposition``."""
        return f"pid{self.pid}-{self.seconds}s{_SUFFIX[self.fmt]}"


@dataclass(frozen=True)
class ProcessInfo:
    """What /proc says about a pid; ``None`` where it could not be read."""

    pid: int
    comm: str | None
    exe: str | None
    cmdline: str | None
    maps: str | None
    state: str | None
    # /proc/PID/exe or maps exists but the agent may not read it (no SYS_PTRACE, other user).
    denied: bool = False

    def describe(self) -> str:
        """A short human description for error messages."""
        parts = [f"pid {self.pid}"]
        if self.comm:
            parts.append(f"({self.comm})")
        if self.exe:
            parts.append(f"exe {self.exe}")
        if self.cmdline:
            cmd = self.cmdline if len(self.cmdline) <= 120 else self.cmdline[:117] + "..."
            parts.append(f"cmdline {cmd!r}")
        return " ".join(parts)


# ---------------------------------------------------------------- pure helpers


def validate_request(
    pid: object,
    seconds: object,
    fmt: object,
    *,
    max_seconds: float = 60.0,
    rate: object = DEFAULT_RATE,
) -> ProfileRequest:
    """Check the arguments; py-spy only takes whole seconds, so fractions are refused rather
    than silently rounded."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        raise InvalidRequest(f"pid must be a positive integer, got {pid!r}")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise InvalidRequest(f"seconds must be a number, got {seconds!r}")
    if not math.isfinite(seconds) or seconds != int(seconds):
        raise InvalidRequest(f"seconds must be a whole number, got {seconds!r}")
    upper = math.floor(max_seconds)
    if not MIN_SECONDS <= seconds <= upper:
        raise InvalidRequest(
            f"seconds must be between {MIN_SECONDS:g} and {upper}, got {seconds:g}"
        )
    if fmt not in FORMATS:
        raise InvalidRequest(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if isinstance(rate, bool) or not isinstance(rate, int) or not 1 <= rate <= 1000:
        raise InvalidRequest(f"rate must be an integer between 1 and 1000, got {rate!r}")
    format_: ProfileFormat = "collapsed" if fmt == "collapsed" else "speedscope"
    return ProfileRequest(pid=pid, seconds=int(seconds), fmt=format_, rate=rate)


def parse_profile_query(
    pid: str, query: Mapping[str, str], *, max_seconds: float = 60.0
) -> ProfileRequest:
    """``GET /v1/processes/{pid}/profile?seconds=N&format=collapsed|speedscope&rate=R``."""
    try:
        pid_value = int(pid, 10)
    except ValueError:
        raise InvalidRequest(f"pid must be a positive integer, got {pid!r}") from None
    raw_seconds = query.get("seconds", "")
    try:
        seconds = float(raw_seconds) if raw_seconds else DEFAULT_SECONDS
    except ValueError:
        raise InvalidRequest(f"seconds must be a number, got {raw_seconds!r}") from None
    raw_rate = query.get("rate", "")
    try:
        rate = int(raw_rate, 10) if raw_rate else DEFAULT_RATE
    except ValueError:
        raise InvalidRequest(f"rate must be an integer, got {raw_rate!r}") from None
    fmt = query.get("format", "") or "collapsed"
    return validate_request(pid_value, seconds, fmt, max_seconds=max_seconds, rate=rate)


# python3, python3.11, python3.13t, python3.12d, python, python2.7 — CPython's binary names.
_PYTHON_EXE: Final = re.compile(r"python(\d+(\.\d+)?)?[dmtu]*")
# libpython3.11.so.1.0 (shared builds, embedded interpreters such as uwsgi, PyInstaller),
# or a CPython extension module (_ssl.cpython-311-x86_64-linux-gnu.so) in a static build.
_LIBPYTHON: Final = re.compile(r"libpython\d+(\.\d+)?[dmtu]*\.so|.*\.cpython-\d+.*\.so")


def _basename(path: str) -> str:
    return path.removesuffix(" (deleted)").rsplit("/", 1)[-1]


def python_evidence(exe: str | None, maps: str | None) -> str | None:
    """Why ``exe`` / ``maps`` (the text of /proc/PID/exe's link and /proc/PID/maps) look like
    CPython, or None. The exe name covers the common case; maps catches interpreters
    embedded in other binaries and renamed executables that link libpython."""
    if exe and _PYTHON_EXE.fullmatch(_basename(exe)):
        return f"executable {exe}"
    for line in (maps or "").splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 6:
            continue
        path = fields[5]
        name = _basename(path)
        if _LIBPYTHON.match(name) or _PYTHON_EXE.fullmatch(name):
            return f"maps {path.removesuffix(' (deleted)')}"
    return None


_PERMISSION_PATTERNS: Final = re.compile(
    r"permission denied|operation not permitted|os error 1\b|os error 13\b|ptrace",
    re.IGNORECASE,
)
_GONE_PATTERNS: Final = re.compile(
    r"no such process|os error 3\b|check that the process is running|process .* not found",
    re.IGNORECASE,
)
_NOT_PYTHON_PATTERNS: Final = re.compile(
    r"failed to find python version|failed to find a python interpreter|"
    r"not a python process|failed to get python version",
    re.IGNORECASE,
)


def _summary(output: str) -> str:
    """py-spy's error and its "Caused by" chain, without the Rust backtrace and progress."""
    head = output.split("Stack backtrace:", 1)[0]
    keep = [
        line.strip()
        for line in head.splitlines()
        if line.strip() and not line.lstrip().startswith(("py-spy>", "note:"))
    ]
    return (" | ".join(keep) or "no output")[:_MAX_MESSAGE]


def classify_pyspy_failure(returncode: int, output: str, pid: int) -> ProfilingError:
    """Turn py-spy's exit code and stderr/stdout into the error the caller can act on."""
    summary = _summary(output)  # matched without the backtrace, whose frames name syscalls
    if _PERMISSION_PATTERNS.search(summary):
        return ProfilerUnavailable(
            f"py-spy may not read process {pid} ({summary}); to fix: {_FIX_HINT}"
        )
    if _NOT_PYTHON_PATTERNS.search(summary):
        return NotAPythonProcess(f"py-spy found no Python interpreter in process {pid}: {summary}")
    if _GONE_PATTERNS.search(summary):
        return ProcessNotFound(f"process {pid} exited or does not exist ({summary})")
    return PySpyError(f"py-spy exited with status {returncode}: {summary}")


# ---------------------------------------------------------------- /proc and py-spy


def resolve_pyspy(configured: str | None) -> str:
    """The py-spy executable: ``configured`` if given, else PATH, else next to this Python
    (a virtualenv's bin/ is often not on PATH)."""
    if configured:
        path = Path(configured)
        found = shutil.which(configured) if path.name == configured else None
        if found:
            return found
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        raise ProfilerUnavailable(
            f"py-spy not found or not executable at {configured!r}; {_FIX_HINT}"
        )
    found = shutil.which("py-spy")
    if found:
        return found
    beside = Path(sys.executable).parent / "py-spy"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    raise ProfilerUnavailable(f"py-spy is not installed (not on PATH); {_FIX_HINT}")


_DENIED: Final = (errno.EACCES, errno.EPERM)


def _read_text(path: Path, limit: int = 4 * 2**20) -> tuple[str | None, bool]:
    """(text or None, whether reading was denied)."""
    try:
        with path.open("rb") as handle:
            return handle.read(limit).decode("utf-8", "replace"), False
    except OSError as exc:
        return None, exc.errno in _DENIED


def _readlink(path: Path) -> tuple[str | None, bool]:
    try:
        return os.readlink(path), False
    except OSError as exc:
        return None, exc.errno in _DENIED


def inspect_process(pid: int, proc_root: Path = Path("/proc")) -> ProcessInfo:
    """Read what identifies ``pid`` from ``proc_root``; ProcessNotFound if it is gone."""
    base = proc_root / str(pid)
    if not base.is_dir():
        raise ProcessNotFound(f"no process with pid {pid} (looked in {base})")
    stat, _ = _read_text(base / "stat")
    state = None
    if stat and ")" in stat:
        # "pid (comm) S ...": comm may contain spaces and parentheses, so split at the last ")".
        after = stat.rsplit(")", 1)[1].split()
        state = after[0] if after else None
    cmdline, _ = _read_text(base / "cmdline", 64 * 1024)
    comm, _ = _read_text(base / "comm")
    exe, exe_denied = _readlink(base / "exe")
    maps, maps_denied = _read_text(base / "maps")
    if stat is None and exe is None and maps is None and not base.is_dir():
        raise ProcessNotFound(f"process {pid} exited")
    return ProcessInfo(
        pid=pid,
        comm=comm.strip() if comm else None,
        exe=exe,
        cmdline=cmdline.replace("\0", " ").strip() if cmdline else None,
        maps=maps,
        state=state,
        denied=exe_denied or maps_denied,
    )


def check_python(info: ProcessInfo) -> str:
    """The evidence that ``info`` is a Python process, else the error to raise."""
    if info.state in ("Z", "X"):
        raise ProcessNotFound(f"process {info.pid} has exited (state {info.state})")
    evidence = python_evidence(info.exe, info.maps)
    if evidence:
        return evidence
    if info.denied:
        raise ProfilerUnavailable(
            f"cannot inspect {info.describe()}: /proc/{info.pid}/exe or maps is not readable; "
            f"to fix: {_FIX_HINT}"
        )
    if info.exe is None and not info.maps:
        raise NotAPythonProcess(f"{info.describe()} has no executable (a kernel thread?)")
    raise NotAPythonProcess(
        f"{info.describe()} is not a Python process "
        "(no python executable or libpython in its memory maps)"
    )


async def _run(argv: list[str], limit_seconds: float) -> tuple[int, str]:
    """Run ``argv``; kill it on timeout or cancellation and always reap it.

    It gets its own process group so the kill also reaches anything it started (a wrapper
    script's children would otherwise keep the pipe open and the call hanging)."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(limit_seconds):
            output, _ = await proc.communicate()
    except TimeoutError:
        raise PySpyError(
            f"py-spy did not finish within {limit_seconds:g}s and was killed"
        ) from None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            # Reap it (and drain the pipe so the transport closes) even while being cancelled.
            await asyncio.shield(proc.communicate())
    returncode = proc.returncode if proc.returncode is not None else -1
    return returncode, output.decode("utf-8", "replace")


async def profile_process(
    pid: int,
    seconds: float,
    fmt: ProfileFormat,
    *,
    pyspy: str | None,
    proc_root: Path = Path("/proc"),
    max_seconds: float = 60,
    rate: int = DEFAULT_RATE,
) -> ProfileResult:
    """Sample ``pid`` for ``seconds`` with py-spy (non-blocking: the target is never paused).

    Raises InvalidRequest, ProcessNotFound, NotAPythonProcess, ProfilerUnavailable or
    PySpyError; ``http_status_for`` maps them to 400/404/422/503/500. ``proc_root``
    is only used to inspect the process: py-spy itself resolves ``pid`` in the agent's own
    pid namespace, so with a host /proc mounted elsewhere the agent still needs hostPID.
    """
    request = validate_request(pid, seconds, fmt, max_seconds=max_seconds, rate=rate)
    # The process is checked first: "no such pid" / "not Python" are more specific answers.
    info = await asyncio.to_thread(inspect_process, request.pid, proc_root)
    check_python(info)
    executable = resolve_pyspy(pyspy)
    with tempfile.TemporaryDirectory(prefix="linescale-pyspy-") as tmp:
        output = Path(tmp) / f"profile{_SUFFIX[request.fmt]}"
        argv = [
            executable,
            "record",
            "--pid",
            str(request.pid),
            "--duration",
            str(request.seconds),
            "--rate",
            str(request.rate),
            "--format",
            _PYSPY_FORMAT[request.fmt],
            "--output",
            str(output),
            "--nonblocking",
        ]
        try:
            returncode, text = await _run(argv, request.seconds + TIMEOUT_MARGIN_SECONDS)
        except OSError as exc:
            raise ProfilerUnavailable(f"cannot run {executable}: {exc}; {_FIX_HINT}") from None
        if returncode != 0:
            error = classify_pyspy_failure(returncode, text, request.pid)
            if isinstance(error, PySpyError) and not (proc_root / str(request.pid)).exists():
                error = ProcessNotFound(f"process {request.pid} exited while being profiled")
            raise error
        try:
            data = await asyncio.to_thread(output.read_bytes)
        except FileNotFoundError:
            raise PySpyError(f"py-spy wrote no profile: {_summary(text)}") from None
    return ProfileResult(
        data=data,
        content_type=_CONTENT_TYPE[request.fmt],
        pid=request.pid,
        seconds=request.seconds,
        fmt=request.fmt,
        process_exited="process exited" in text.lower(),
    )
