"""Child processes that never outlive the controller: free loopback ports, a pre-exec hook that
asks the kernel to signal the child when its parent dies (Linux), and a bounded stop.

Used by ``linescale demo`` and the local orchestrator.

One subtlety of ``PR_SET_PDEATHSIG``: "parent" is the *thread* that forked the child. Spawn
from the event loop's thread (never from ``asyncio.to_thread`` or an executor), or the child is
signalled as soon as that worker thread exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (another process may still take it before use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def die_with_parent_preexec(signum: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the kernel send ``signum`` to the child when this process
    dies; None where that is not available (not Linux, no prctl).

    libc is resolved here, in the parent: the child only makes the system call between fork
    and exec. If the parent died before the call took effect, the child signals itself.
    """
    if sys.platform != "linux":
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, int(signum))
        if os.getppid() != parent:
            os.kill(os.getpid(), signum)

    return preexec


def _signal_group(process: subprocess.Popen[bytes], signum: int, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)


async def _wait_exit(process: subprocess.Popen[bytes], timeout_seconds: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_seconds
    while process.poll() is None:
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def stop_process(
    process: subprocess.Popen[bytes], timeout_seconds: float, *, group: bool = False
) -> bool:
    """SIGTERM, wait up to ``timeout_seconds``, then SIGKILL; always reaps the child.

    ``group=True`` signals the whole process group (for children started with
    ``process_group=0``), so grandchildren go too. Returns True when SIGKILL was needed.
    """
    if process.poll() is not None:
        return False
    _signal_group(process, signal.SIGTERM, group)
    if await _wait_exit(process, timeout_seconds):
        if group:  # stragglers the leader left in its group
            _signal_group(process, signal.SIGKILL, group)
        return False
    _signal_group(process, signal.SIGKILL, group)
    if not await _wait_exit(process, 5.0):
        process.wait()  # SIGKILL cannot be ignored: this returns promptly
    return True
