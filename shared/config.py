"""Settings: defaults, then a YAML file, then ``LINESCALE_*`` environment, then CLI flags.

Built once in ``main()`` and passed down frozen. A bad key or value is refused at start-up
with a message naming it (``ConfigError``); the command-line entry points exit 2 on it.

Environment overrides: ``LINESCALE_TOKEN``, ``LINESCALE_TOKEN_FILE``, ``LINESCALE_LOG_LEVEL``,
``LINESCALE_LOG_FORMAT`` for top-level keys, and ``LINESCALE_<SECTION>__<KEY>`` for nested
ones, e.g. ``LINESCALE_AGENT__REPORT_INTERVAL_SECONDS=2``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from shared.wire import BottleneckThresholds, PassiveHealth, RetryPolicy, Timeouts

ENV_PREFIX = "LINESCALE_"
MIN_TOKEN_LENGTH = 16

# Environment variables under the prefix that are not configuration (test and tool switches).
_NON_CONFIG_ENV = frozenset({"LINESCALE_REQUIRE_SERVICES"})


class ConfigError(ValueError):
    """The configuration was refused; the message names the key and what is wrong with it."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def _check_listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError("must be HOST:PORT, e.g. 0.0.0.0:9400")
    return value


def split_listen(listen: str) -> tuple[str, int]:
    """Split a validated HOST:PORT into host (brackets stripped for IPv6) and port."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


class CollectorSettings(_Section):
    interval_seconds: Annotated[float, Field(ge=0.5, le=3600)] = 5.0
    top_processes: Annotated[int, Field(ge=1, le=500)] = 20
    # Host mounts when the agent runs in a pod: hostPath /proc and /sys/fs/cgroup.
    proc_root: str = "/proc"
    cgroup_root: str = "/sys/fs/cgroup"


class ProfilingSettings(_Section):
    # Pyroscope server for the agent's own continuous profile; empty disables it.
    server_address: str = ""
    sample_rate: Annotated[int, Field(ge=1, le=1000)] = 100
    # py-spy for on-demand profiles of other Python processes; empty: look it up on PATH.
    pyspy_path: str = ""
    max_seconds: Annotated[float, Field(gt=0, le=300)] = 60.0

    @field_validator("server_address")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class PodListSettings(_Section):
    """Where the agent learns namespace/pod/container names for the pod UIDs it sees."""

    # off: UIDs and IDs only; in-cluster: the pod's service account; kubeconfig: a file.
    source: Literal["off", "in-cluster", "kubeconfig"] = "off"
    kubeconfig: str = ""
    refresh_seconds: Annotated[float, Field(ge=1, le=3600)] = 30.0
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0

    @model_validator(mode="after")
    def _kubeconfig_named(self) -> PodListSettings:
        if self.source == "kubeconfig" and not self.kubeconfig:
            raise ValueError("kubeconfig: required when source is kubeconfig")
        return self


NAMESPACE_PATTERN = r"^[a-z0-9]([-a-z0-9_.]{0,61}[a-z0-9])?$"


class CacheSettings(_Section):
    """The node-local cache: L1 in the agent's memory, optional Redis L2 shared by all nodes."""

    enabled: bool = True
    capacity_bytes: Annotated[int, Field(ge=64 * 1024, le=64 * 2**30)] = 64 * 2**20
    # Redis for L2 and cross-node invalidation; empty: L1 only. Also ``--redis URL``.
    redis_url: str = ""
    redis_timeout_seconds: Annotated[float, Field(gt=0, le=10)] = 0.25
    compress_above_bytes: Annotated[int, Field(ge=0, le=64 * 2**20)] = 1024
    default_ttl_seconds: Annotated[float, Field(gt=0, le=30 * 86400)] = 300.0
    max_ttl_seconds: Annotated[float, Field(gt=0, le=30 * 86400)] = 86400.0
    namespace_ttls: dict[Annotated[str, Field(pattern=NAMESPACE_PATTERN)], float] = {}
    negative_ttl_seconds: Annotated[float, Field(ge=0, le=3600)] = 0.0
    stale_seconds: Annotated[float, Field(ge=0, le=86400)] = 0.0
    max_key_bytes: Annotated[int, Field(ge=1, le=4096)] = 250
    max_value_bytes: Annotated[int, Field(ge=1, le=64 * 2**20)] = 1 * 2**20
    max_namespaces: Annotated[int, Field(ge=1, le=128)] = 64

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value


class StaticEndpoint(_Section):
    address: str
    zone: str = ""
    weight: Annotated[int, Field(ge=0, le=1000)] = 100


class StaticService(_Section):
    """A service routed without a controller (or outside the cluster); a pushed routing table
    naming the same service takes precedence."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")]
    listen: str
    policy: Literal["p2c_peak_ewma", "round_robin", "least_request", "random"] = "p2c_peak_ewma"
    endpoints: Annotated[list[str | StaticEndpoint], Field(min_length=1, max_length=1000)]
    timeouts: Timeouts = Timeouts()
    retries: RetryPolicy = RetryPolicy()
    passive_health: PassiveHealth = PassiveHealth()

    _listen = field_validator("listen")(_check_listen)

    @field_validator("policy", mode="before")
    @classmethod
    def _alias(cls, value: object) -> object:
        """``peak_ewma`` is what operators call it; the wire name says it is P2C."""
        return "p2c_peak_ewma" if value == "peak_ewma" else value


class HAProxySettings(_Section):
    """The HAProxy the agent drives through its Runtime API (mode ``haproxy``)."""

    socket: str = ""  # unix socket path, or host:port of a TCP stats socket (level admin)
    backend_prefix: str = "ls_"  # backends ls_<service> belong to the agent
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 2.0


class DataplaneSettings(_Section):
    """Where the agent routes service traffic: its embedded proxy (default), a local HAProxy
    driven through the Runtime API, or nowhere (``off``)."""

    mode: Literal["embedded", "haproxy", "off"] = "embedded"
    # Pushed services with a listen_port are served on this host (the pod or node address).
    listen_host: str = "127.0.0.1"
    services: Annotated[list[StaticService], Field(max_length=500)] = []
    haproxy: HAProxySettings = HAProxySettings()


class AgentSettings(_Section):
    listen: str = "0.0.0.0:9400"
    node: Annotated[str, Field(max_length=253)] = ""
    zone: Annotated[str, Field(max_length=63)] = ""
    region: Annotated[str, Field(max_length=63)] = ""
    # URL the controller uses to push to this agent; derived from ``listen`` when empty.
    advertise_url: str = ""
    controller_url: str = ""
    report_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 5.0
    report_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 3.0
    max_body_bytes: Annotated[int, Field(ge=1024, le=64 * 2**20)] = 1 * 2**20
    collector: CollectorSettings = CollectorSettings()
    bottlenecks: BottleneckThresholds = BottleneckThresholds()
    profiling: ProfilingSettings = ProfilingSettings()
    pod_list: PodListSettings = PodListSettings()
    cache: CacheSettings = CacheSettings()
    dataplane: DataplaneSettings = DataplaneSettings()

    _listen = field_validator("listen")(_check_listen)

    @field_validator("controller_url", "advertise_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class ControllerSettings(_Section):
    listen: str = "0.0.0.0:9500"
    agent_stale_after_seconds: Annotated[float, Field(gt=0, le=86400)] = 15.0
    # Agents silent this long are dropped from the registry (bounded memory as nodes churn).
    agent_forget_after_seconds: Annotated[float, Field(gt=0, le=30 * 86400)] = 3600.0
    push_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 3.0
    reconcile_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 5.0
    max_body_bytes: Annotated[int, Field(ge=1024, le=64 * 2**20)] = 1 * 2**20
    max_agents: Annotated[int, Field(ge=1, le=100_000)] = 5000
    # Where metrics come from: empty = scrape the agents directly (embedded default).
    prometheus_url: str = ""
    # Where workloads run: local child processes (embedded default) or Kubernetes.
    orchestrator: Literal["local", "kubernetes"] = "local"
    kubeconfig: str = ""  # empty with kubernetes: in-cluster service account
    namespaces: list[Annotated[str, Field(pattern=NAMESPACE_PATTERN)]] = []  # empty: all
    dry_run: bool = False  # log would-be actions instead of acting
    # With the Kubernetes orchestrator, only the holder of this Lease acts.
    leader_election: bool = True
    lease_namespace: Annotated[str, Field(pattern=NAMESPACE_PATTERN)] = "linescale"
    lease_name: Annotated[str, Field(pattern=NAMESPACE_PATTERN)] = "linescale-controller"
    lease_duration_seconds: Annotated[int, Field(ge=3, le=300)] = 15
    # JSON-lines decision log; empty keeps decisions in memory only (lost on restart).
    decision_log_path: str = ""
    # JSON file keeping per-workload policies and pauses across restarts; empty: memory only.
    controls_path: str = ""
    # YAML file of HorizontalPodAutoscaler objects: scaling policies by target workload
    # (below a workload's linescale.io/scaling-policy annotation and the admin API).
    policies_path: str = ""
    # How often the ScalabilityEngine reconciles (the HPA's sync period is 15 s).
    scaling_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 15.0
    # How often routing is recomputed (Envoy's outlier-detection interval is 10 s).
    balancing_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0
    # How often the ResourceEngine recomputes right-sizing, capacity and efficiency.
    resource_interval_seconds: Annotated[float, Field(gt=0, le=86400)] = 300.0
    # Hourly price of a node (for waste in money and bin-packing costs).
    node_price_per_hour: Annotated[float, Field(ge=0, le=1000)] = 0.192
    # How often the PerformanceEngine analyses the fleet and advances its tuning trials.
    performance_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    # How often vertical recommendations are refreshed and applied (the VPA's is 1 min).
    vertical_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0
    # Optional: when set, GET /v1/* needs this token (or the admin token); probes and
    # /metrics stay open for kubelet and Prometheus.
    read_token: SecretStr = SecretStr("")

    _listen = field_validator("listen")(_check_listen)

    @field_validator("prometheus_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class Settings(_Section):
    token: SecretStr = SecretStr("")
    token_file: str = ""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "text"] = "auto"
    agent: AgentSettings = AgentSettings()
    controller: ControllerSettings = ControllerSettings()

    @model_validator(mode="after")
    def _token_from_file(self) -> Settings:
        if self.token_file and not self.token.get_secret_value():
            try:
                secret = Path(self.token_file).read_text(encoding="utf-8").strip()
            except OSError as error:
                raise ValueError(f"token_file: cannot read: {error.strerror}") from None
            object.__setattr__(self, "token", SecretStr(secret))
        return self

    def require_token(self) -> str:
        """The bearer token for push and report endpoints; refuses to run without one."""
        secret = self.token.get_secret_value()
        if len(secret) < MIN_TOKEN_LENGTH:
            problem = "is not set" if not secret else f"is shorter than {MIN_TOKEN_LENGTH}"
            raise ConfigError(
                f"token: {problem} (set LINESCALE_TOKEN, token_file, or token: in the config file)"
            )
        return secret


def _set_path(tree: dict[str, Any], path: list[str], value: str) -> None:
    node = tree
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(path)}: {part} is not a section")
        node = child
    node[path[-1]] = value


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Turn ``LINESCALE_*`` variables into a nested dict of raw (string) values."""
    tree: dict[str, Any] = {}
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in _NON_CONFIG_ENV:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if any(not part for part in path):
            raise ConfigError(f"{name}: malformed variable name")
        _set_path(tree, path, value)
    return tree


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file; an empty file is an empty config."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"config file {path}: {error.strerror}") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path}: not valid YAML: {error}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path}: must be a mapping of keys to values")
    return loaded


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors(include_url=False):
        key = ".".join(str(part) for part in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"{key}: {message}" if key else message)
    return "; ".join(lines)


def load_settings(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the frozen Settings from file, environment and flag overrides, in that order."""
    # Start from the defaults so a partial nested value (one threshold's ``warning``) keeps
    # the rest of its defaults.
    raw: dict[str, Any] = Settings().model_dump()
    raw = _merge(raw, read_config_file(path) if path else {})
    raw = _merge(raw, env_overrides(os.environ if environ is None else environ))
    raw = _merge(raw, overrides or {})
    try:
        # Environment values are strings: lax mode converts "2" to 2.0 for typed keys.
        return Settings.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None
