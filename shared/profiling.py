"""Continuous CPU profiling of this Python process, pushed to a Pyroscope server.

One call, ``start_profiling("my-service")``, from any Linescale component or workload. Profiles
are labelled with the pod, namespace, node (and container) taken from the Kubernetes Downward
API environment so they can be found next to the metrics of the same pod. Profiling is an
extra: a missing server address, a missing or broken ``pyroscope-io`` or a server that is down
never raise into the caller; ``start_profiling`` logs why (once) and returns False.

pyroscope-io 1.x samples only the process it runs in (py-spy inside the process), pushes every
``upload_interval`` seconds and once more on ``shutdown()``. It is not fork-safe: call
``start_profiling`` in the final process (after daemonising, in each worker after fork).
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import threading
from collections.abc import Mapping
from types import ModuleType
from typing import Final

__all__ = [
    "DOWNWARD_API_TAGS",
    "MAX_LABEL_NAME_LENGTH",
    "MAX_LABEL_VALUE_LENGTH",
    "MAX_TAGS",
    "SERVER_ENV",
    "is_profiling",
    "profile_tags",
    "sanitize_label_name",
    "start_profiling",
    "stop_profiling",
]

logger = logging.getLogger(__name__)

# Read when ``server_address`` is None, so a workload can be switched on from its manifest.
SERVER_ENV: Final = "LINESCALE_PROFILING_SERVER"

# Environment variable → label. The first three are the usual Downward API ``fieldRef``s
# (metadata.name, metadata.namespace, spec.nodeName); the container name has no fieldRef,
# so manifests set CONTAINER_NAME literally.
DOWNWARD_API_TAGS: Final[Mapping[str, str]] = {
    "POD_NAME": "pod",
    "POD_NAMESPACE": "namespace",
    "NODE_NAME": "node",
    "CONTAINER_NAME": "container",
}

# Pyroscope allows 1024/2048 by default; anything longer than a Kubernetes object name (253)
# is almost certainly not an identifier and only inflates the series index.
MAX_LABEL_NAME_LENGTH: Final = 128
MAX_LABEL_VALUE_LENGTH: Final = 253
# Pyroscope rejects series with more than 30 labels; the SDK adds 6 of its own.
MAX_TAGS: Final = 20

# Set by the SDK itself; a user tag with one of these names would duplicate it and make the
# server reject every push.
_RESERVED_NAMES: Final = frozenset({"service_name"})
_INVALID_NAME_CHARS: Final = re.compile(r"[^A-Za-z0-9_]")

_lock = threading.Lock()
_started = False
_logged: set[str] = set()


def sanitize_label_name(name: str) -> str:
    """Map ``name`` to ``[A-Za-z_][A-Za-z0-9_]*`` (Prometheus' classic rule, which Pyroscope
    enforces); '' when nothing usable is left or the name is reserved."""
    cleaned = _INVALID_NAME_CHARS.sub("_", name.strip())[:MAX_LABEL_NAME_LENGTH]
    if not cleaned.strip("_"):
        return ""
    if cleaned[0].isdigit():
        cleaned = ("_" + cleaned)[:MAX_LABEL_NAME_LENGTH]
    if cleaned.startswith("__") or cleaned in _RESERVED_NAMES:
        return ""
    return cleaned


def _sanitize_label_value(value: str) -> str:
    # Environment strings may carry lone surrogates (undecodable bytes); the server wants UTF-8.
    text = value.strip().encode("utf-8", "replace").decode("utf-8")
    return text[:MAX_LABEL_VALUE_LENGTH]


def profile_tags(
    environ: Mapping[str, str] | None = None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Series labels for this process: Downward API values from ``environ``, then ``extra``
    (which wins on a clash). Empty values and unusable names are dropped, names are made
    valid label names, values are cut to ``MAX_LABEL_VALUE_LENGTH``, at most ``MAX_TAGS``."""
    source = os.environ if environ is None else environ
    pairs = [(label, source.get(var, "")) for var, label in DOWNWARD_API_TAGS.items()]
    if extra:
        pairs.extend(extra.items())
    tags: dict[str, str] = {}
    for raw_name, raw_value in pairs:
        name = sanitize_label_name(str(raw_name))
        value = _sanitize_label_value(str(raw_value))
        if not name or not value:
            continue
        if name not in tags and len(tags) >= MAX_TAGS:
            continue
        tags[name] = value
    return tags


def _log_once(reason: str, message: str, *args: object, level: int = logging.INFO) -> None:
    """Log each reason once per process: a workload calling this per worker must not spam."""
    if reason in _logged:
        return
    _logged.add(reason)
    logger.log(level, message, *args)


def _load_pyroscope() -> ModuleType | None:
    try:
        return importlib.import_module("pyroscope")
    except Exception as exc:  # ImportError, or OSError from the native library
        _log_once(
            "unavailable",
            "profiling disabled: pyroscope-io cannot be imported (%s)",
            exc,
            level=logging.WARNING,
        )
        return None


def start_profiling(
    application_name: str,
    server_address: str | None = None,
    *,
    tags: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    sample_rate: int = 100,
    upload_interval: int = 10,
) -> bool:
    """Start pushing CPU profiles of this process to ``server_address`` (default: the
    ``LINESCALE_PROFILING_SERVER`` environment variable).

    Returns True when profiling runs (also when it already did: the second call is a no-op),
    False when it is not configured or cannot start; never raises.
    """
    global _started
    try:
        with _lock:
            if _started:
                return True
            source = os.environ if environ is None else environ
            # Only None falls back to the environment: an explicit "" means "off".
            address = source.get(SERVER_ENV, "") if server_address is None else server_address
            address = address.strip().rstrip("/")
            if not address:
                _log_once("no-server", "profiling disabled: no server address (set %s)", SERVER_ENV)
                return False
            if not address.startswith(("http://", "https://")):
                _log_once(
                    "bad-server",
                    "profiling disabled: server address %r must start with http:// or https://",
                    address,
                    level=logging.WARNING,
                )
                return False
            name = application_name.strip()
            if not name:
                _log_once(
                    "no-name", "profiling disabled: empty application name", level=logging.WARNING
                )
                return False
            if not 1 <= sample_rate <= 1000 or upload_interval < 1:
                _log_once(
                    "bad-rate",
                    "profiling disabled: sample_rate %r (1..1000) or upload_interval %r (>= 1)",
                    sample_rate,
                    upload_interval,
                    level=logging.WARNING,
                )
                return False
            pyroscope = _load_pyroscope()
            if pyroscope is None:
                return False
            labels = profile_tags(source, tags)
            ok = bool(
                pyroscope.configure(
                    application_name=name,
                    server_address=address,
                    sample_rate=sample_rate,
                    tags=labels,
                    upload_interval=upload_interval,
                )
            )
            if not ok:
                _log_once(
                    "configure-false",
                    "profiling disabled: pyroscope.configure() refused to start",
                    level=logging.WARNING,
                )
                return False
            _started = True
            logger.info(
                "profiling %s to %s every %ss at %s Hz, tags %s",
                name,
                address,
                upload_interval,
                sample_rate,
                labels,
            )
            return True
    except Exception as exc:  # profiling must never take the workload down
        _log_once(
            "error",
            "profiling disabled: starting pyroscope failed: %r",
            exc,
            level=logging.WARNING,
        )
        return False


def stop_profiling() -> bool:
    """Stop profiling and push what was sampled since the last upload (``shutdown()``
    flushes). True when a running profiler was stopped; never raises."""
    global _started
    try:
        with _lock:
            if not _started:
                return False
            _started = False
            pyroscope = _load_pyroscope()
            return pyroscope is not None and bool(pyroscope.shutdown())
    except Exception as exc:
        logger.warning("stopping the profiler failed: %r", exc)
        return False


def is_profiling() -> bool:
    """Whether ``start_profiling`` succeeded and ``stop_profiling`` was not called since."""
    return _started
