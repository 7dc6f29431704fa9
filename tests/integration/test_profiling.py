"""Continuous profiling end to end: a real pyroscope-io in a subprocess pushes to the fake
Pyroscope server in ``pyroscope_ingest``, labelled with the pod it runs in.

The workload runs in a subprocess because the SDK's native sampler must not run inside
pytest (it is process-global and not fork-safe), and because that is how a workload uses it.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from messages import TOKEN
from pyroscope_ingest import (
    PUSH_PATH,
    ProtoError,
    decode_push_request,
    iter_fields,
    parse_ingest_name,
    start_ingest,
)
from services import LinescaleFactory

ROOT = Path(__file__).resolve().parents[2]

WORKLOAD = textwrap.dedent(
    """
    import json, os, sys, time
    from shared.profiling import is_profiling, start_profiling, stop_profiling

    def linescale_burn_marker(seconds):
        deadline = time.monotonic() + seconds
        total = 0
        while time.monotonic() < deadline:
            total += sum(i * i for i in range(500))
        return total

    interval = int(sys.argv[3])
    started = start_profiling("line-telemetry", sys.argv[1], upload_interval=interval)
    again = start_profiling("line-telemetry", sys.argv[1])
    linescale_burn_marker(float(sys.argv[2]))
    running = is_profiling()
    if sys.argv[4] == "exit":  # leave without the final flush
        print(json.dumps({"started": started, "again": again, "running": running}), flush=True)
        os._exit(0)
    stopped = stop_profiling()
    print(json.dumps({"started": started, "again": again, "running": running,
                      "stopped": stopped}))
    """
)


def _run_workload(
    server: str, burn_seconds: float, *, upload_interval: int = 10, end: str = "stop"
) -> dict[str, bool]:
    env = {
        **os.environ,
        "POD_NAME": "line-telemetry-abc",
        "POD_NAMESPACE": "line",
        "NODE_NAME": "node-1",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("LINESCALE_PROFILING_SERVER", None)
    done = subprocess.run(
        [sys.executable, "-c", WORKLOAD, server, str(burn_seconds), str(upload_interval), end],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, bool] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_workload_profile_arrives_with_pod_labels_on_stop() -> None:
    with start_ingest() as ingest:
        # Default upload interval (10 s) is longer than the run: what arrives was flushed by
        # stop_profiling().
        result = _run_workload(ingest.url, 1.5)
        assert result == {"started": True, "again": True, "running": True, "stopped": True}
        wanted = {
            "service_name": "line-telemetry",
            "pod": "line-telemetry-abc",
            "namespace": "line",
            "node": "node-1",
        }
        profile = ingest.wait_for(
            lambda p: all(p.labels.get(k) == v for k, v in wanted.items()) and p.raw_size > 0,
            timeout=5,
        )
        assert profile is not None, (ingest.profiles, ingest.errors)
        assert ingest.errors == []
        assert profile.endpoint == "push"
        assert profile.labels["__name__"] == "process_cpu"
        assert "linescale_burn_marker" in profile.strings()
        path, headers = ingest.requests[0]
        assert path == PUSH_PATH
        assert headers["content-type"] == "application/proto"
        assert headers["content-encoding"] == "gzip"


def test_workload_profile_is_uploaded_every_interval_without_stop() -> None:
    with start_ingest() as ingest:
        result = _run_workload(ingest.url, 2.5, upload_interval=1, end="exit")
        assert result == {"started": True, "again": True, "running": True}
        profile = ingest.wait_for(
            lambda p: p.labels.get("pod") == "line-telemetry-abc" and p.raw_size > 0, timeout=2
        )
        assert profile is not None, (ingest.profiles, ingest.errors)
        assert "linescale_burn_marker" in profile.strings()


def test_workload_without_server_runs_unprofiled() -> None:
    result = _run_workload("", 0)
    assert result == {"started": False, "again": False, "running": False, "stopped": False}


# ---------------------------------------------------------------- the fake server itself


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers.get("Content-Type", ""), error.read()


def _field(number: int, payload: bytes) -> bytes:
    assert len(payload) < 128
    return bytes([number << 3 | 2, len(payload)]) + payload


def _push_request(labels: dict[str, str], raw: bytes) -> bytes:
    pairs = b"".join(
        _field(1, _field(1, k.encode()) + _field(2, v.encode())) for k, v in labels.items()
    )
    return _field(1, pairs + _field(2, _field(1, raw) + _field(2, b"id-1")))


def test_ingest_decodes_proto_json_and_legacy_pushes() -> None:
    body = _push_request({"service_name": "a", "pod": "p"}, b"\x0a\x00pprof")
    assert decode_push_request(body) == [({"service_name": "a", "pod": "p"}, [b"\x0a\x00pprof"])]
    with start_ingest() as ingest:
        status, content_type, answer = _post(
            ingest.url + PUSH_PATH,
            gzip.compress(body),
            {"Content-Type": "application/proto", "Content-Encoding": "gzip"},
        )
        assert (status, content_type, answer) == (200, "application/proto", b"")

        document = {
            "series": [
                {
                    "labels": [{"name": "service_name", "value": "b"}],
                    "samples": [{"rawProfile": "cHByb2Y="}],
                }
            ]
        }
        status, content_type, answer = _post(
            ingest.url + PUSH_PATH,
            json.dumps(document).encode(),
            {"Content-Type": "application/json"},
        )
        assert (status, content_type, answer) == (200, "application/json", b"{}")

        status, _, _ = _post(
            ingest.url + "/ingest?name=c.cpu%7Bpod%3Dq%2Cnode%3Dn%7D&from=1&until=2&format=folded",
            b"main;work 3\n",
            {"Content-Type": "binary/octet-stream"},
        )
        assert status == 200

        status, _, answer = _post(
            ingest.url + PUSH_PATH, b"\xff\xff", {"Content-Type": "application/proto"}
        )
        assert status == 400
        assert json.loads(answer)["code"] == "invalid_argument"

        assert [(p.endpoint, p.labels, p.raw_profiles) for p in ingest.profiles] == [
            ("push", {"service_name": "a", "pod": "p"}, (b"\x0a\x00pprof",)),
            ("push", {"service_name": "b"}, (b"pprof",)),
            ("ingest", {"service_name": "c.cpu", "pod": "q", "node": "n"}, (b"main;work 3\n",)),
        ]
        assert ingest.profiles[2].params["format"] == "folded"
        assert len(ingest.errors) == 1


@pytest.mark.parametrize(
    "data",
    [b"\x0a\x05ab", b"\x08\xff", b"\x0b", b"\x00\x01"],
    ids=["short-length", "short-varint", "group-wire-type", "field-zero"],
)
def test_proto_reader_rejects_malformed_input(data: bytes) -> None:
    with pytest.raises(ProtoError):
        list(iter_fields(data))


def test_parse_ingest_name() -> None:
    assert parse_ingest_name("app") == {"service_name": "app"}
    assert parse_ingest_name("app{a=1, b=2}") == {"service_name": "app", "a": "1", "b": "2"}


def test_agent_profiles_itself_tagged_with_node_and_zone(
    linescale_factory: LinescaleFactory,
) -> None:
    with start_ingest() as ingest:
        agent = linescale_factory(
            "agent",
            ["--node", "node-7", "--zone", "b"],
            env={
                "LINESCALE_TOKEN": TOKEN,
                "LINESCALE_AGENT__PROFILING__SERVER_ADDRESS": ingest.url,
                "LINESCALE_AGENT__COLLECTOR__INTERVAL_SECONDS": "0.5",
            },
        )
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # give the sampler something to show
            urllib.request.urlopen(f"{agent.url}/metrics", timeout=5).close()
            time.sleep(0.1)
        agent.stop()  # SIGTERM: the agent's shutdown flushes the last profile
        found = ingest.wait_for(
            lambda p: p.labels.get("service_name") == "linescale-agent", timeout=10
        )
    assert found is not None, ingest.profiles
    assert (found.labels.get("node"), found.labels.get("zone")) == ("node-7", "b")
    assert found.raw_size > 0
