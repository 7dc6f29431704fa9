"""Wire contracts between agents and the controller (DESIGN.md section 4).

Every message carries ``schema_version``; pushes carry a monotonic ``version``. Parsing is
strict: unknown fields, wrong types and out-of-range values are refused as a whole, and the
error names the offending field so an operator can fix the sender.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SCHEMA_VERSION: Literal[1] = 1

# Bounds that keep one message from exhausting memory on the receiver.
MAX_SERVICES = 500
MAX_ENDPOINTS_PER_SERVICE = 1000
MAX_FINDINGS = 200
MAX_DATAPLANE_ENDPOINTS = 2000

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


class BottleneckFinding(WireModel):
    """One USE-method finding: which resource, which signal, how bad, and who causes it."""

    resource: Literal["cpu", "memory", "disk", "network", "fds"]
    signal: Literal["utilization", "saturation", "errors"]
    severity: Literal["info", "warning", "critical"]
    value: float
    subject: Text = ""
    message: Text


class CacheLevelStats(WireModel):
    level: Literal["l1", "l2"]
    hits: Count
    misses: Count
    evictions: Count
    entries: Count
    bytes: Count


class EndpointStats(WireModel):
    service: Name
    address: str
    ewma_latency_ms: NonNegative
    in_flight: Count
    requests: Count
    errors: Count

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
    cache: Annotated[list[CacheLevelStats], Field(max_length=2)] = []
    dataplane: Annotated[list[EndpointStats], Field(max_length=MAX_DATAPLANE_ENDPOINTS)] = []
    routing_version: Count = 0
    tuning_version: Count = 0


# --- RoutingTable (controller -> agents) ---------------------------------------------------


class Endpoint(WireModel):
    address: str
    zone: Label
    region: OptionalLabel = ""
    weight: Annotated[int, Field(ge=0, le=1000)] = 100
    state: Literal["active", "draining", "ejected"] = "active"

    _address = field_validator("address")(_check_address)


class ServiceRoute(WireModel):
    name: Name
    policy: Literal["p2c_peak_ewma", "round_robin", "least_request", "random"] = "p2c_peak_ewma"
    endpoints: Annotated[list[Endpoint], Field(max_length=MAX_ENDPOINTS_PER_SERVICE)]

    @field_validator("endpoints")
    @classmethod
    def _unique_addresses(cls, endpoints: list[Endpoint]) -> list[Endpoint]:
        seen: set[str] = set()
        for endpoint in endpoints:
            if endpoint.address in seen:
                raise ValueError(f"duplicate endpoint address {endpoint.address}")
            seen.add(endpoint.address)
        return endpoints


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
        return model.model_validate_json(raw)
    except ValidationError as error:
        problems = [
            (_field_path(tuple(item["loc"])), str(item["msg"]))
            for item in error.errors(include_url=False)
        ]
        raise WireError(model.__name__, problems) from None
