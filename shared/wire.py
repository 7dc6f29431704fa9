"""Wire contracts between agents and the controller (DESIGN.md section 4).

Every message carries ``schema_version``; pushes carry a monotonic ``version``. Parsing is
strict: unknown fields, wrong types and out-of-range values are refused as a whole, and the
error names the offending field so an operator can fix the sender.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SCHEMA_VERSION: Literal[1] = 1

# Bounds that keep one message from exhausting memory on the receiver.
MAX_SERVICES = 500
MAX_ENDPOINTS_PER_SERVICE = 1000
MAX_FINDINGS = 200
MAX_DATAPLANE_ENDPOINTS = 2000
MAX_PRIORITY = 7
MAX_CACHE_STATS = 2 * 128  # two levels x namespaces

_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"  # Kubernetes DNS subdomain
_ADDRESS_RE = re.compile(r"^(?P<host>[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>\d{1,5})$")

Name = Annotated[str, Field(pattern=_NAME_PATTERN, max_length=253)]
Label = Annotated[str, Field(max_length=63, pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")]
OptionalLabel = Annotated[
    str, Field(max_length=63, pattern=r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
]
Count = Annotated[int, Field(ge=0)]
NonNegative = Annotated[float, Field(ge=0)]
UnixSeconds = Annotated[float, Field(ge=0)]
Text = Annotated[str, Field(max_length=1024)]


class WireModel(BaseModel):
    """Base of every wire message: strict types, no unknown fields, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


def _check_address(value: str) -> str:
    match = _ADDRESS_RE.match(value)
    if match is None or not 0 < int(match["port"]) < 65536:
        raise ValueError("must be host:port with a port in 1..65535")
    return value


# --- AgentReport (agent -> controller) ---------------------------------------------------


class Capacity(WireModel):
    cpu_cores: NonNegative
    memory_bytes: Count


class Evidence(WireModel):
    """One measured value against the threshold it crossed."""

    signal: Annotated[str, Field(min_length=1, max_length=128)]  # e.g. "node.psi.cpu.some.avg10"
    value: float
    threshold: float
    unit: Annotated[str, Field(max_length=32)] = ""


class Culprit(WireModel):
    """Who causes a bottleneck, and how much of the resource is theirs (0..1)."""

    pid: Annotated[int, Field(ge=0)] | None = None
    command: Annotated[str, Field(max_length=256)] = ""
    namespace: Annotated[str, Field(max_length=253)] = ""
    pod: Annotated[str, Field(max_length=253)] = ""
    pod_uid: Annotated[str, Field(max_length=64)] = ""
    container: Annotated[str, Field(max_length=253)] = ""
    container_id: Annotated[str, Field(max_length=128)] = ""
    share: Annotated[float, Field(ge=0, le=1)] = 0.0


class BottleneckFinding(WireModel):
    """One USE-method finding: which resource, which kind of signal, how bad, since when, why,
    and who causes it."""

    resource: Literal["cpu", "memory", "disk", "network", "fds"]
    kind: Literal["utilization", "saturation", "errors"]
    severity: Literal["warning", "critical"]
    rule: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
    subject: Annotated[str, Field(min_length=1, max_length=300)]  # "node/x", "container/ns/pod/c"
    since: UnixSeconds
    evidence: Annotated[list[Evidence], Field(max_length=16)]
    culprits: Annotated[list[Culprit], Field(max_length=20)] = []
    message: Text


class CacheLevelStats(WireModel):
    """Cumulative counters of one cache level for one namespace on one node."""

    level: Literal["l1", "l2"]
    namespace: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9_.]{0,61}[a-z0-9])?$")]
    hits: Count
    misses: Count
    evictions: Count
    entries: Count
    bytes: Count
    errors: Count = 0


class MissRatioPoint(WireModel):
    """One point of a node's estimated L1 miss-ratio curve: at this capacity, this miss ratio."""

    capacity_bytes: Count
    miss_ratio: Annotated[float, Field(ge=0, le=1)]


class EndpointStats(WireModel):
    """What one agent's dataplane saw of one upstream endpoint since it started: counters are
    cumulative (the controller takes differences between reports), gauges are current."""

    service: Name
    address: str
    zone: OptionalLabel = ""  # the endpoint's zone, as the routing table gave it
    ewma_latency_ms: NonNegative  # peak-EWMA of response time, decayed to the report time
    in_flight: Count
    requests: Count
    errors: Count  # 5xx answers, resets, connect failures and timeouts
    consecutive_errors: Count = 0  # errors since the last success
    locally_ejected: bool = False  # passive health took it out, before the controller knew

    _address = field_validator("address")(_check_address)


class AgentReport(WireModel):
    schema_version: Literal[1] = SCHEMA_VERSION
    node: Name
    zone: Label
    region: OptionalLabel = ""
    endpoint: Annotated[str, Field(pattern=r"^https?://[^\s/]+$", max_length=300)]
    sent_at: UnixSeconds
    sequence: Count
    health: Literal["ok", "degraded", "failing"]
    health_reasons: Annotated[list[Text], Field(max_length=32)] = []
    capacity: Capacity
    findings: Annotated[list[BottleneckFinding], Field(max_length=MAX_FINDINGS)] = []
    cache: Annotated[list[CacheLevelStats], Field(max_length=MAX_CACHE_STATS)] = []
    # The L1's estimated miss-ratio curve (all namespaces), for sizing recommendations.
    cache_mrc: Annotated[list[MissRatioPoint], Field(max_length=64)] = []
    cache_capacity_bytes: Count = 0
    dataplane: Annotated[list[EndpointStats], Field(max_length=MAX_DATAPLANE_ENDPOINTS)] = []
    routing_version: Count = 0
    tuning_version: Count = 0


# --- RoutingTable (controller -> agents) ---------------------------------------------------


class _Lax(WireModel):
    """Also read from YAML and environment strings in the agent's config; ``parse`` still
    validates pushed JSON strictly."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=False)


class Endpoint(WireModel):
    """One upstream endpoint as the controller wants it used.

    ``weight`` is the effective weight (slow start already applied); ``state``: ``active``
    endpoints take new requests, ``draining`` ones only finish what they have, ``ejected`` ones
    (outlier detection) take nothing unless the service is in panic. ``priority`` 0 is the
    preferred level (e.g. the caller's region); higher levels take the load ``priority_load``
    gives them."""

    address: str
    zone: Label
    region: OptionalLabel = ""
    weight: Annotated[int, Field(ge=0, le=1000)] = 100
    state: Literal["active", "draining", "ejected"] = "active"
    priority: Annotated[int, Field(ge=0, le=MAX_PRIORITY)] = 0

    _address = field_validator("address")(_check_address)


Share = Annotated[float, Field(ge=0, le=1)]


class Timeouts(_Lax):
    connect_seconds: Annotated[float, Field(gt=0, le=60)] = 1.0
    per_try_seconds: Annotated[float, Field(gt=0, le=300)] = 5.0
    overall_seconds: Annotated[float, Field(gt=0, le=600)] = 15.0


class RetryPolicy(_Lax):
    """Retries of idempotent requests only (GET, HEAD, OPTIONS, PUT, DELETE), after a connect
    failure, a reset or a 502/503/504, never beyond ``budget_percent`` of the requests of the
    last 10 s (plus ``min_retries_per_second``, so a quiet service can still retry)."""

    max_attempts: Annotated[int, Field(ge=1, le=5)] = 2  # tries in all, the first included
    budget_percent: Annotated[float, Field(ge=0, le=100)] = 20.0
    min_retries_per_second: Annotated[float, Field(ge=0, le=1000)] = 10.0


class PassiveHealth(_Lax):
    """Local ejection by the agent, before the controller's outlier detection reacts."""

    consecutive_failures: Annotated[int, Field(ge=1, le=1000)] = 5
    window_seconds: Annotated[float, Field(gt=0, le=60)] = 1.0
    ejection_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0


class ServiceRoute(WireModel):
    """How every agent routes one service.

    ``listen_port``: the agent's dataplane listens for this service on that port (its own
    address); none: the agent only reports on it. ``zone_shares[caller_zone][upstream_zone]``
    is the fraction of a caller zone's priority-0 traffic for each upstream zone (Envoy's
    zone-aware routing, computed centrally); a caller zone not listed splits by healthy hosts.
    ``priority_load[p]`` is the fraction of traffic for priority ``p`` (empty: all to the lowest
    level that has active endpoints). ``panic``: route over every endpoint of a level,
    ignoring health, as Envoy does below its panic threshold."""

    name: Name
    policy: Literal["p2c_peak_ewma", "round_robin", "least_request", "random"] = "p2c_peak_ewma"
    endpoints: Annotated[list[Endpoint], Field(max_length=MAX_ENDPOINTS_PER_SERVICE)]
    listen_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    zone_shares: Annotated[dict[Label, dict[Label, Share]], Field(max_length=64)] = {}
    priority_load: Annotated[list[Share], Field(max_length=MAX_PRIORITY + 1)] = []
    panic: bool = False
    timeouts: Timeouts = Timeouts()
    retries: RetryPolicy = RetryPolicy()
    passive_health: PassiveHealth = PassiveHealth()

    @field_validator("endpoints")
    @classmethod
    def _unique_addresses(cls, endpoints: list[Endpoint]) -> list[Endpoint]:
        seen: set[str] = set()
        for endpoint in endpoints:
            if endpoint.address in seen:
                raise ValueError(f"duplicate endpoint address {endpoint.address}")
            seen.add(endpoint.address)
        return endpoints

    @field_validator("zone_shares")
    @classmethod
    def _shares_sum_to_one(
        cls, zone_shares: dict[str, dict[str, float]]
    ) -> dict[str, dict[str, float]]:
        for caller, shares in zone_shares.items():
            if shares and abs(sum(shares.values()) - 1.0) > 1e-6:
                raise ValueError(f"shares of caller zone {caller} must sum to 1")
        return zone_shares

    @field_validator("priority_load")
    @classmethod
    def _load_sums_to_one(cls, load: list[float]) -> list[float]:
        if load and abs(sum(load) - 1.0) > 1e-6:
            raise ValueError("priority_load must sum to 1")
        return load


class RoutingTable(WireModel):
    schema_version: Literal[1] = SCHEMA_VERSION
    version: Annotated[int, Field(ge=1)]
    generated_at: UnixSeconds
    services: Annotated[list[ServiceRoute], Field(max_length=MAX_SERVICES)]

    @field_validator("services")
    @classmethod
    def _unique_services(cls, services: list[ServiceRoute]) -> list[ServiceRoute]:
        names = [service.name for service in services]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate service names {duplicates}")
        return services


# --- Bottleneck thresholds (agent config, and pushed in a TuningSet) ---------------------------


class Threshold(_Lax):
    warning: float
    critical: float


def _threshold(warning: float, critical: float) -> Threshold:
    return Threshold(warning=warning, critical=critical)


class BottleneckThresholds(_Lax):
    """When a signal becomes a finding. Defaults follow the anchors: node-mixin
    (NodeCPUHighUsage 90 %, NodeFileDescriptorLimit 70/90 %), kubernetes-mixin
    (CPUThrottlingHigh 25 %), Gregg's USE checklist (run queue over CPU count).

    Hysteresis: a finding opens after ``trigger_samples`` consecutive breaching samples and
    closes after ``clear_samples`` consecutive samples below ``clear_fraction`` of the
    threshold (above it, for ``memory_available_percent`` where lower is worse).
    """

    cpu_runqueue_ratio: Threshold = _threshold(1.5, 3.0)  # runnable tasks per CPU
    cpu_psi_some_percent: Threshold = _threshold(25.0, 60.0)  # avg10
    cpu_utilization_percent: Threshold = _threshold(90.0, 98.0)
    cpu_throttled_percent: Threshold = _threshold(25.0, 50.0)  # throttled / periods
    memory_psi_full_percent: Threshold = _threshold(5.0, 20.0)
    memory_available_percent: Threshold = _threshold(10.0, 5.0)  # lower is worse
    io_psi_full_percent: Threshold = _threshold(20.0, 50.0)
    disk_utilization_percent: Threshold = _threshold(90.0, 98.0)
    fd_usage_percent: Threshold = _threshold(70.0, 90.0)
    network_drop_percent: Threshold = _threshold(1.0, 5.0)  # drops / packets
    tcp_retransmit_percent: Threshold = _threshold(1.0, 5.0)  # retrans / out segments
    clear_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.8
    trigger_samples: Annotated[int, Field(ge=1, le=100)] = 1
    clear_samples: Annotated[int, Field(ge=1, le=100)] = 2

    @model_validator(mode="after")
    def _ordered(self) -> BottleneckThresholds:
        for name in type(self).model_fields:
            threshold = getattr(self, name)
            if not isinstance(threshold, Threshold):
                continue
            lower_is_worse = name == "memory_available_percent"
            if (threshold.critical > threshold.warning) == lower_is_worse and (
                threshold.critical != threshold.warning
            ):
                order = "at most" if lower_is_worse else "at least"
                raise ValueError(f"{name}: critical must be {order} warning")
        return self


# --- TuningSet (controller -> agents) --------------------------------------------------------


class CacheTuning(WireModel):
    capacity_bytes: Annotated[int, Field(ge=1024, le=64 * 2**30)]
    default_ttl_seconds: Annotated[float, Field(gt=0, le=86400 * 30)]
    max_ttl_seconds: Annotated[float, Field(gt=0, le=86400 * 30)]


class DataplaneTuning(WireModel):
    connect_timeout_ms: Annotated[int, Field(ge=1, le=60_000)]
    request_timeout_ms: Annotated[int, Field(ge=1, le=600_000)]
    retry_budget_percent: Annotated[float, Field(ge=0, le=100)]
    max_concurrency: Annotated[int, Field(ge=1, le=100_000)]


class TuningSet(WireModel):
    schema_version: Literal[1] = SCHEMA_VERSION
    version: Annotated[int, Field(ge=1)]
    generated_at: UnixSeconds
    cache: CacheTuning
    dataplane: DataplaneTuning
    collector_interval_seconds: Annotated[float, Field(ge=0.5, le=3600)]
    # None leaves the agent's configured thresholds in force.
    bottlenecks: BottleneckThresholds | None = None


# --- Decision (controller log and API) ------------------------------------------------------


class DecisionReason(WireModel):
    code: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
    message: Text
    inputs: dict[str, float] = {}
    policy: Text = ""
    forecast: Annotated[list[float], Field(max_length=10_000)] = []


class Actuation(WireModel):
    state: Literal["pending", "done", "failed", "skipped"]
    finished_at: UnixSeconds | None = None
    error: Text = ""


class Decision(WireModel):
    schema_version: Literal[1] = SCHEMA_VERSION
    id: Annotated[str, Field(min_length=1, max_length=64)]
    kind: Literal["scale", "resize", "route", "tune", "cache"]
    target: Annotated[str, Field(min_length=1, max_length=300)]
    from_value: float | str | None
    to_value: float | str | None
    reason: DecisionReason
    decided_at: UnixSeconds
    decide_seconds: NonNegative
    actuation: Actuation


# --- parsing -----------------------------------------------------------------------------------

M = TypeVar("M", bound=WireModel)


class WireError(ValueError):
    """A message was refused; ``problems`` lists (field, message) pairs, field first."""

    def __init__(self, model: str, problems: list[tuple[str, str]]) -> None:
        self.model = model
        self.problems = problems
        summary = "; ".join(f"{field}: {message}" for field, message in problems)
        super().__init__(f"invalid {model}: {summary}")


def _field_path(location: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in location) or "(body)"


def parse(model: type[M], raw: bytes | str) -> M:
    """Parse one JSON message strictly, raising WireError that names every bad field."""
    try:
        return model.model_validate_json(raw, strict=True)
    except ValidationError as error:
        problems = [
            (_field_path(tuple(item["loc"])), str(item["msg"]))
            for item in error.errors(include_url=False)
        ]
        raise WireError(model.__name__, problems) from None
