"""A fake Pyroscope server for tests: records what profiling clients push, checks nothing else.

There is no Pyroscope binary to run here, so this stands in for one. It accepts

* ``POST /push.v1.PusherService/Push`` — what pyroscope-io 1.x sends: connect protocol,
  ``Content-Type: application/proto``, ``Content-Encoding: gzip``, body a protobuf
  ``PushRequest{series: [RawProfileSeries{labels: [LabelPair], samples: [RawSample]}]}``,
  each ``raw_profile`` an uncompressed pprof. Answered ``200`` with an empty proto body
  (or ``{}`` for connect JSON), which is all the SDK looks at.
* ``POST /ingest?name=app{k=v,...}&from=..&until=..&format=..`` — the legacy API
  (pyroscope-io 0.8.x, or pushing py-spy's folded output by hand).

It runs ``http.server`` in a thread, so it works from sync tests and from a subprocess's
point of view alike. Protobuf is decoded by a tiny wire-format walker: adding the
``protobuf`` package for four messages is not worth it.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PUSH_PATH = "/push.v1.PusherService/Push"
INGEST_PATH = "/ingest"
MAX_BODY_BYTES = 64 * 2**20

# Protobuf wire types.
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class ProtoError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for shift in range(0, 70, 7):
        if pos >= len(buf):
            raise ProtoError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    raise ProtoError("varint longer than 10 bytes")


def iter_fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield ``(field_number, wire_type, value)``; ``value`` is bytes for length-delimited."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtoError("field number 0")
        value: int | bytes
        if wire == _VARINT:
            value, pos = _read_varint(buf, pos)
        elif wire in (_I64, _I32):
            size = 8 if wire == _I64 else 4
            if pos + size > len(buf):
                raise ProtoError("truncated fixed-width field")
            value = int.from_bytes(buf[pos : pos + size], "little")
            pos += size
        elif wire == _LEN:
            size, pos = _read_varint(buf, pos)
            if pos + size > len(buf):
                raise ProtoError(f"field {number}: length {size} past the end")
            value = buf[pos : pos + size]
            pos += size
        else:
            raise ProtoError(f"unsupported wire type {wire}")
        yield number, wire, value


def _submessages(buf: bytes, number: int) -> Iterator[bytes]:
    for num, wire, value in iter_fields(buf):
        if num == number:
            if wire != _LEN or not isinstance(value, bytes):
                raise ProtoError(f"field {number} is not length-delimited")
            yield value


def _text(buf: bytes, number: int) -> str:
    """The last value of string field ``number`` (proto3 semantics), '' when absent."""
    result = ""
    for raw in _submessages(buf, number):
        result = raw.decode("utf-8")
    return result


def _maybe_gunzip(data: bytes) -> bytes:
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def pprof_strings(raw_profile: bytes) -> list[str]:
    """The string table (field 6) of a pprof ``Profile``: function names, file names, units."""
    data = _maybe_gunzip(raw_profile)
    return [raw.decode("utf-8", "replace") for raw in _submessages(data, 6)]


@dataclass(frozen=True)
class ReceivedProfile:
    """One series (push) or one request (/ingest) as the server saw it."""

    endpoint: str  # "push" or "ingest"
    labels: dict[str, str]
    raw_profiles: tuple[bytes, ...]
    headers: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)

    @property
    def raw_size(self) -> int:
        return sum(len(raw) for raw in self.raw_profiles)

    def strings(self) -> list[str]:
        """All pprof string-table entries of this series (push only)."""
        return [s for raw in self.raw_profiles for s in pprof_strings(raw)]


def decode_push_request(body: bytes) -> list[tuple[dict[str, str], list[bytes]]]:
    """``PushRequest`` → ``[(labels, [raw_profile, ...]), ...]``."""
    series: list[tuple[dict[str, str], list[bytes]]] = []
    for raw_series in _submessages(body, 1):
        labels = {_text(pair, 1): _text(pair, 2) for pair in _submessages(raw_series, 1)}
        samples = [raw for sample in _submessages(raw_series, 2) for raw in _submessages(sample, 1)]
        series.append((labels, samples))
    return series


def decode_push_json(body: bytes) -> list[tuple[dict[str, str], list[bytes]]]:
    """The connect-JSON form of ``PushRequest`` (camelCase names, bytes as base64)."""
    document = json.loads(body or b"{}")
    if not isinstance(document, dict):
        raise ValueError("body is not a JSON object")
    series: list[tuple[dict[str, str], list[bytes]]] = []
    for item in document.get("series", []):
        labels = {str(p.get("name", "")): str(p.get("value", "")) for p in item.get("labels", [])}
        samples = [base64.b64decode(s.get("rawProfile", "")) for s in item.get("samples", [])]
        series.append((labels, samples))
    return series


def parse_ingest_name(name: str) -> dict[str, str]:
    """``app.cpu{pod=a,node=b}`` → ``{"service_name": "app.cpu", "pod": "a", "node": "b"}``."""
    app, brace, rest = name.partition("{")
    labels = {"service_name": app.strip()}
    if brace:
        for pair in rest.rstrip("}").split(","):
            key, eq, value = pair.partition("=")
            if eq and key.strip():
                labels[key.strip()] = value.strip()
    return labels


class _Handler(BaseHTTPRequestHandler):
    server: _IngestHTTPServer
    server_version = "fake-pyroscope/1"

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean; failures are recorded in ``errors`` instead."""

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            data = b"".join(chunks)
        else:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                raise ValueError(f"body of {length} bytes is too large")
            data = self.rfile.read(length)
        encoding = self.headers.get("Content-Encoding", "identity").lower()
        if encoding == "gzip":
            return gzip.decompress(data)
        if encoding == "deflate":
            return zlib.decompress(data)
        if encoding not in ("", "identity"):
            raise ValueError(f"unsupported Content-Encoding {encoding!r}")
        return data

    def _reply(self, status: int, body: bytes = b"", content_type: str = "") -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        headers = {key.lower(): value for key, value in self.headers.items()}
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        self.server.ingest.requests.append((url.path, headers))
        try:
            body = self._body()
            if url.path == PUSH_PATH:
                is_json = content_type in ("application/json", "application/connect+json")
                decoded = decode_push_json(body) if is_json else decode_push_request(body)
                for labels, raws in decoded:
                    self.server.ingest.record(ReceivedProfile("push", labels, tuple(raws), headers))
                if is_json:
                    self._reply(HTTPStatus.OK, b"{}", "application/json")
                else:
                    self._reply(HTTPStatus.OK, b"", "application/proto")
            elif url.path == INGEST_PATH:
                params = {k: v[-1] for k, v in parse_qs(url.query).items()}
                if "name" not in params:
                    raise ValueError("missing name parameter")
                labels = parse_ingest_name(params["name"])
                self.server.ingest.record(
                    ReceivedProfile("ingest", labels, (body,), headers, params)
                )
                self._reply(HTTPStatus.OK)
            else:
                self._reply(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
        except (ValueError, UnicodeDecodeError, OSError, EOFError, binascii.Error) as exc:
            # ProtoError, JSONDecodeError and gzip's BadGzipFile are ValueError/OSError too.
            self.server.ingest.errors.append(f"{self.path}: {exc!r}")
            message = json.dumps({"code": "invalid_argument", "message": str(exc)}).encode()
            self._reply(HTTPStatus.BAD_REQUEST, message, "application/json")


class _IngestHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, ingest: PyroscopeIngest) -> None:
        self.ingest = ingest
        super().__init__(("127.0.0.1", 0), _Handler)


class PyroscopeIngest:
    """What the fake server has seen; use through ``start_ingest()``."""

    def __init__(self) -> None:
        self.url = ""
        self.profiles: list[ReceivedProfile] = []
        self.requests: list[tuple[str, dict[str, str]]] = []  # (path, lowercased headers)
        self.errors: list[str] = []
        self._changed = threading.Condition()

    def record(self, profile: ReceivedProfile) -> None:
        with self._changed:
            self.profiles.append(profile)
            self._changed.notify_all()

    def wait_for(
        self, predicate: Callable[[ReceivedProfile], bool], timeout: float = 10.0
    ) -> ReceivedProfile | None:
        """The first recorded profile matching ``predicate``, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for profile in self.profiles:
                    if predicate(profile):
                        return profile
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)

    def matching(self, labels: Mapping[str, str]) -> list[ReceivedProfile]:
        """Profiles whose labels include all of ``labels``."""
        with self._changed:
            return [
                p for p in self.profiles if all(p.labels.get(k) == v for k, v in labels.items())
            ]


@contextmanager
def start_ingest() -> Iterator[PyroscopeIngest]:
    """Serve on a free 127.0.0.1 port until the ``with`` block ends."""
    ingest = PyroscopeIngest()
    server = _IngestHTTPServer(ingest)
    host, port = server.server_address[:2]
    ingest.url = f"http://{host!s}:{port}"
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="fake-pyroscope", daemon=True
    )
    thread.start()
    try:
        yield ingest
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
