"""Outlier detection as a pure state machine over per-interval host statistics.

Ports ``DetectorImpl`` (envoyproxy/envoy source/common/upstream/outlier_detection_impl.cc) with
the defaults of ``api/envoy/config/cluster/v3/outlier_detection.proto``. Envoy reacts to
consecutive errors inline and runs the statistical detectors on an interval timer; ``sweep`` is
one interval: the consecutive-error ejections reported during it, then Envoy's
``onIntervalTimer`` (un-eject expired hosts, success-rate and failure-percentage ejections, decay
of the ejection multiplier).

Kept from Envoy, on purpose:

- the cap: an ejection is refused when ``100 * (ejected + 1) / hosts > max_ejection_percent``,
  unless ``always_eject_one_host`` is set and nothing is ejected yet. We default that switch
  to on, as ``outlier_detection.proto`` documents ``max_ejection_percent`` ("defaults to 10%
  but will eject at least one host regardless of the value") and as the controller must: a
  small service of 3 replicas could otherwise never shed a failing one. Current Envoy code
  has the switch off by default; ``OutlierSettings(always_eject_one_host=False)`` gives that.
- ejection time ``min(base * multiplier, max) + jitter``; the multiplier grows by one per
  ejection while ``multiplier * base < max + base`` and shrinks by one per interval in which a
  host that was un-ejected at least one interval ago stays in.
- enforcement percentages are ``featureEnabled``: ``random % 100 < pct``. The "random" number
  here is a hash of (address, detector, now), so a sweep is a pure function of its inputs.

Differences: consecutive ejections are stamped with the sweep time ``now`` (Envoy stamps the
moment of the error), and a host ejected by success rate in a sweep is not ejected a second
time by failure percentage in the same sweep (Envoy would count it twice).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

EjectionReason = Literal[
    "consecutive_5xx", "consecutive_gateway_failure", "success_rate", "failure_percentage"
]
EventAction = Literal["ejected", "unejected", "not_enforced", "overflow"]


@dataclass(frozen=True, slots=True)
class OutlierSettings:
    """``OutlierDetection``; seconds instead of protobuf durations, Envoy's defaults."""

    interval_seconds: float = 10.0
    base_ejection_seconds: float = 30.0
    max_ejection_seconds: float | None = None  # None: max(300 s, base), as Envoy
    max_ejection_jitter_seconds: float = 0.0
    consecutive_5xx: int = 5
    enforcing_consecutive_5xx: int = 100
    consecutive_gateway_failure: int = 5
    enforcing_consecutive_gateway_failure: int = 0
    max_ejection_percent: int = 10
    always_eject_one_host: bool = True
    success_rate_minimum_hosts: int = 5
    success_rate_request_volume: int = 100
    success_rate_stdev_factor: int = 1900  # thousandths: 1900 means 1.9 standard deviations
    enforcing_success_rate: int = 100
    failure_percentage_threshold: int = 85
    failure_percentage_minimum_hosts: int = 5
    failure_percentage_request_volume: int = 50
    enforcing_failure_percentage: int = 0

    def __post_init__(self) -> None:
        if self.max_ejection_seconds is not None and (
            self.max_ejection_seconds < self.base_ejection_seconds
        ):
            raise ValueError("max_ejection_time cannot be smaller than base_ejection_time")

    @property
    def effective_max_ejection_seconds(self) -> float:
        if self.max_ejection_seconds is not None:
            return self.max_ejection_seconds
        return max(300.0, self.base_ejection_seconds)


@dataclass(frozen=True, slots=True)
class HostStats:
    """What one host saw since the previous sweep.

    ``requests`` and ``errors_5xx`` feed the success rate (success = non-5xx);
    ``gateway_errors`` (502/503/504) are a subset of ``errors_5xx``. ``consecutive_5xx`` and
    ``consecutive_gateway_failure`` are the longest runs the caller's counters reached, which
    Envoy resets on any success (a gateway run also on other 5xx) and on ejection.
    """

    address: str
    requests: int = 0
    errors_5xx: int = 0
    gateway_errors: int = 0
    consecutive_5xx: int = 0
    consecutive_gateway_failure: int = 0


@dataclass(frozen=True, slots=True)
class HostOutlierState:
    """Envoy's per-host monitor: the ejection flag and what sets the next ejection time."""

    address: str
    ejected: bool = False
    num_ejections: int = 0
    eject_time_multiplier: int = 0  # Envoy's ejectTimeBackoff()
    last_ejection_at: float | None = None
    last_unejection_at: float | None = None
    jitter_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class OutlierEvent:
    """One thing a sweep did (or refused to do) to a host, and why."""

    address: str
    action: EventAction
    reason: EjectionReason | Literal["ejection_expired"]
    message: str


@dataclass(slots=True)
class _Sweep:
    """Mutable working state of one sweep; only ``sweep`` sees it."""

    states: dict[str, HostOutlierState]
    settings: OutlierSettings
    now: float
    events: list[OutlierEvent]

    @property
    def ejected_count(self) -> int:
        return sum(1 for state in self.states.values() if state.ejected)

    def roll(self, address: str, what: str) -> int:
        key = f"{address}|{what}|{self.now!r}".encode()
        return zlib.crc32(key) % 100

    def enforced(self, address: str, reason: EjectionReason, percent: int) -> bool:
        if percent >= 100:
            return True
        return percent > 0 and self.roll(address, reason) < percent

    def eject(self, address: str, reason: EjectionReason, percent: int, detail: str) -> None:
        """``ejectHost``: the max-ejection-percent cap, enforcement, then the ejection."""
        settings = self.settings
        hosts = len(self.states)
        ejected_percent = 100.0 * (self.ejected_count + 1) / hosts
        should_eject = ejected_percent <= min(100, settings.max_ejection_percent)
        if settings.always_eject_one_host:
            should_eject = should_eject or self.ejected_count == 0
        if not should_eject:
            message = (
                f"{reason}: {detail}; ejecting would make {ejected_percent:.1f} % of hosts "
                f"ejected > max_ejection_percent {settings.max_ejection_percent}"
            )
            self.events.append(OutlierEvent(address, "overflow", reason, message))
            return
        if not self.enforced(address, reason, percent):
            message = f"{reason}: {detail}; not enforced (enforcing {percent} %)"
            self.events.append(OutlierEvent(address, "not_enforced", reason, message))
            return
        state = self.states[address]
        base = settings.base_ejection_seconds
        multiplier = state.eject_time_multiplier
        if multiplier * base < settings.effective_max_ejection_seconds + base:
            multiplier += 1
        jitter_ms = math.floor(settings.max_ejection_jitter_seconds * 1000)
        jitter = (zlib.crc32(f"{address}|jitter|{self.now!r}".encode()) % (jitter_ms + 1)) / 1000
        self.states[address] = replace(
            state,
            ejected=True,
            num_ejections=state.num_ejections + 1,
            eject_time_multiplier=multiplier,
            last_ejection_at=self.now,
            jitter_seconds=jitter,
        )
        duration = min(base * multiplier, settings.effective_max_ejection_seconds) + jitter
        message = f"{reason}: {detail}; ejected for {duration:g} s"
        self.events.append(OutlierEvent(address, "ejected", reason, message))


def _success_rate(stats: HostStats) -> float | None:
    if stats.requests <= 0:
        return None
    return (stats.requests - stats.errors_5xx) * 100.0 / stats.requests


def success_rate_ejection_threshold(
    success_rates: Sequence[float], stdev_factor: float
) -> tuple[float, float]:
    """(mean, mean - factor * population standard deviation): ``successRateEjectionThreshold``."""
    mean = sum(success_rates) / len(success_rates)
    variance = sum((rate - mean) ** 2 for rate in success_rates) / len(success_rates)
    return mean, mean - stdev_factor * math.sqrt(variance)


def _consecutive_ejections(work: _Sweep, stats: Iterable[HostStats]) -> None:
    settings = work.settings
    for host in stats:
        # Envoy charges the gateway counter before the 5xx one, so it fires first.
        if (
            settings.consecutive_gateway_failure > 0
            and host.consecutive_gateway_failure >= settings.consecutive_gateway_failure
            and not work.states[host.address].ejected
        ):
            work.eject(
                host.address,
                "consecutive_gateway_failure",
                settings.enforcing_consecutive_gateway_failure,
                f"{host.consecutive_gateway_failure} consecutive gateway errors",
            )
        if (
            settings.consecutive_5xx > 0
            and host.consecutive_5xx >= settings.consecutive_5xx
            and not work.states[host.address].ejected
        ):
            work.eject(
                host.address,
                "consecutive_5xx",
                settings.enforcing_consecutive_5xx,
                f"{host.consecutive_5xx} consecutive 5xx",
            )


def _uneject_expired(work: _Sweep) -> None:
    """``checkHostForUneject``: out once ``min(base * multiplier, max) + jitter`` has passed."""
    settings = work.settings
    for address, state in list(work.states.items()):
        if not state.ejected or state.last_ejection_at is None:
            continue
        duration = (
            min(
                settings.base_ejection_seconds * state.eject_time_multiplier,
                settings.effective_max_ejection_seconds,
            )
            + state.jitter_seconds
        )
        if duration <= work.now - state.last_ejection_at:
            work.states[address] = replace(state, ejected=False, last_unejection_at=work.now)
            message = f"ejection_expired: back after {work.now - state.last_ejection_at:g} s"
            work.events.append(OutlierEvent(address, "unejected", "ejection_expired", message))


def _statistical_ejections(work: _Sweep, stats: Mapping[str, HostStats]) -> None:
    """``processSuccessRateEjections`` for external-origin errors."""
    settings = work.settings
    hosts = len(work.states)
    if (
        hosts < settings.success_rate_minimum_hosts
        and hosts < settings.failure_percentage_minimum_hosts
    ):
        return
    success_rate_hosts: list[tuple[str, float]] = []
    failure_percentage_hosts: list[tuple[str, float]] = []
    for address, state in work.states.items():
        host = stats.get(address)
        rate = None if state.ejected or host is None else _success_rate(host)
        if host is None or rate is None:
            continue
        if host.requests >= settings.success_rate_request_volume:
            success_rate_hosts.append((address, rate))
        if host.requests >= settings.failure_percentage_request_volume:
            failure_percentage_hosts.append((address, rate))

    if success_rate_hosts and len(success_rate_hosts) >= settings.success_rate_minimum_hosts:
        mean, threshold = success_rate_ejection_threshold(
            [rate for _, rate in success_rate_hosts], settings.success_rate_stdev_factor / 1000.0
        )
        for address, rate in success_rate_hosts:
            if rate < threshold:
                detail = (
                    f"success rate {rate:.2f} % < threshold {threshold:.2f} % (mean {mean:.2f} %)"
                )
                work.eject(address, "success_rate", settings.enforcing_success_rate, detail)

    if (
        failure_percentage_hosts
        and len(failure_percentage_hosts) >= settings.failure_percentage_minimum_hosts
    ):
        for address, rate in failure_percentage_hosts:
            if work.states[address].ejected:
                continue
            if 100.0 - rate >= settings.failure_percentage_threshold:
                detail = (
                    f"failure percentage {100.0 - rate:.2f} % >= "
                    f"{settings.failure_percentage_threshold} %"
                )
                work.eject(
                    address, "failure_percentage", settings.enforcing_failure_percentage, detail
                )


def _decay_multipliers(work: _Sweep) -> None:
    """A host back in for at least one interval earns one step off its ejection multiplier."""
    for address, state in list(work.states.items()):
        if state.ejected or state.last_unejection_at is None:
            continue
        back_for_an_interval = work.now - state.last_unejection_at >= work.settings.interval_seconds
        if back_for_an_interval and state.eject_time_multiplier != 0:
            work.states[address] = replace(
                state, eject_time_multiplier=state.eject_time_multiplier - 1
            )


def sweep(
    states: Mapping[str, HostOutlierState],
    stats: Sequence[HostStats],
    now: float,
    settings: OutlierSettings | None = None,
) -> tuple[dict[str, HostOutlierState], tuple[OutlierEvent, ...]]:
    """One outlier-detection interval ending at ``now`` (seconds, monotonic).

    The hosts are those in ``stats`` (a host missing from it has left the cluster and its state
    is dropped; a new one starts clean). Returns the new states by address and the events in
    the order they happened.
    """
    settings = settings or OutlierSettings()
    by_address: dict[str, HostStats] = {}
    for host in stats:
        if host.address in by_address:
            raise ValueError(f"duplicate host {host.address!r}")
        by_address[host.address] = host
    work = _Sweep(
        {address: states.get(address) or HostOutlierState(address) for address in by_address},
        settings,
        now,
        [],
    )
    _consecutive_ejections(work, by_address.values())
    _uneject_expired(work)
    _statistical_ejections(work, by_address)
    _decay_multipliers(work)
    return work.states, tuple(work.events)
