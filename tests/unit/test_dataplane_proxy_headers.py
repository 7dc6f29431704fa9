"""The proxy's pure hot-path pieces: which headers cross it, and the in-flight gauge read at
scrape time. Pinned here because the hot path was rewritten for speed (copy-then-drop
headers, a gauge function instead of inc/dec) and must behave exactly as before."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from prometheus_client import CollectorRegistry

from agent.dataplane.ewma import PeakEwma
from agent.dataplane.proxy import (
    DataplaneMetrics,
    EndpointRuntime,
    forwarded_headers,
    response_headers,
)
from shared import metric_names


def headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


@pytest.mark.parametrize(
    ("incoming", "expected"),
    [
        pytest.param(
            [("Host", "a"), ("Accept", "*/*")],
            [("Host", "a"), ("Accept", "*/*")],
            id="end-to-end headers pass in order",
        ),
        pytest.param(
            [("Host", "a"), ("Connection", "keep-alive"), ("Keep-Alive", "5"), ("TE", "trailers")],
            [("Host", "a")],
            id="standard hop-by-hop headers are dropped",
        ),
        pytest.param(
            [("connection", "close, X-Secret"), ("x-secret", "s"), ("X-Kept", "k")],
            [("X-Kept", "k")],
            id="names listed in Connection are dropped whatever their case",
        ),
        pytest.param(
            [("Set-Cookie", "a=1"), ("Transfer-Encoding", "chunked"), ("Set-Cookie", "b=2")],
            [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")],
            id="repeated headers keep every value in order",
        ),
        pytest.param(
            [("Proxy-Connection", "keep-alive"), ("Upgrade", "h2c"), ("Trailer", "X")],
            [],
            id="nothing end-to-end leaves nothing",
        ),
    ],
)
def test_response_headers_drop_hop_by_hop_only(
    incoming: list[tuple[str, str]], expected: list[tuple[str, str]]
) -> None:
    assert list(response_headers(headers(*incoming)).items()) == expected


@pytest.mark.parametrize(
    ("incoming", "remote", "forwarded_for"),
    [
        pytest.param([("Host", "a")], "10.0.0.1", ["10.0.0.1"], id="client becomes the chain"),
        pytest.param(
            [("X-Forwarded-For", "1.1.1.1"), ("x-forwarded-for", "2.2.2.2")],
            "10.0.0.1",
            ["1.1.1.1, 2.2.2.2, 10.0.0.1"],
            id="prior hops are joined and the client appended",
        ),
        pytest.param(
            [("X-Forwarded-For", "1.1.1.1")], None, ["1.1.1.1"], id="unknown client adds nothing"
        ),
    ],
)
def test_forwarded_headers_append_the_client_to_x_forwarded_for(
    incoming: list[tuple[str, str]], remote: str | None, forwarded_for: list[str]
) -> None:
    forwarded = forwarded_headers(headers(("Connection", "close"), *incoming), remote)
    assert "Connection" not in forwarded
    assert forwarded.getall("X-Forwarded-For", []) == forwarded_for


def test_the_in_flight_gauge_reads_the_endpoints_count_at_scrape() -> None:
    registry = CollectorRegistry()
    runtime = EndpointRuntime("orders", "10.0.0.1:80", PeakEwma(0.0), DataplaneMetrics(registry))

    def scraped() -> float | None:
        labels = {"service": "orders", "endpoint": "10.0.0.1:80"}
        return registry.get_sample_value(metric_names.DATAPLANE_IN_FLIGHT, labels)

    runtime.started()
    runtime.started()
    assert scraped() == 2
    runtime.finished()
    assert scraped() == 1
    runtime.finished()
    assert scraped() == 0
